"""Tests of `stillframes.eval` beyond the chapter's own checks: FID against the pytorch-fid command line,
the Frechet distance, the flow baseline on a translating shape, and the shipped toon-FD network."""
import os, re, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stillframes import eval as ev
from stillframes.data import ToonClips
from stillframes.utils import to_uint8

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def torch_home(monkeypatch):
    "TORCH_HOME as set, else the project's `../shared/torch`; skip when the Inception weights are not there."
    home = os.environ.get('TORCH_HOME') or str(ROOT.parent / 'shared' / 'torch')
    monkeypatch.setenv('TORCH_HOME', home)
    if not ev.inception_weights().is_file():
        pytest.skip(f'FID Inception weights not found at {ev.inception_weights()}')
    return home


def _write_pngs(folder, frames):
    from PIL import Image
    folder.mkdir()
    for i, img in enumerate(to_uint8(frames)): Image.fromarray(img).save(folder / f'{i:03d}.png')


def test_fid_matches_pytorch_fid_cli(tmp_path, torch_home):
    a = torch.stack([ToonClips(10, split='test', style='A').render(i, 0.5) for i in range(10)])
    b = torch.stack([ToonClips(10, split='test', style='B').render(i, 0.5) for i in range(10)])
    _write_pngs(tmp_path / 'a', a); _write_pngs(tmp_path / 'b', b)
    ours = ev.fid_folders(tmp_path / 'a', tmp_path / 'b', batch_size=5, device='cpu')
    cmd = [sys.executable, '-m', 'pytorch_fid', str(tmp_path / 'a'), str(tmp_path / 'b'),
           '--device', 'cpu', '--batch-size', '5', '--dims', '2048', '--num-workers', '0']
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'TORCH_HOME': torch_home}, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    theirs = float(re.search(r'FID:\s+([-\d.eE+]+)', res.stdout).group(1))
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_evaluate_with_fid(torch_home):
    clips = torch.stack([ToonClips(3, frames=4, size=32, split='test')[i][0] for i in range(3)])
    table, by_t = ev.evaluate({'crossfade': ev.crossfade}, clips, fid=True, device='cpu', progress=False)
    assert list(table.columns) == ['psnr', 'ssim', 'line_cd', 'toon_fd', 'fid', 'ms_per_frame']
    assert np.isfinite(table.loc['crossfade', 'fid']) and table.loc['crossfade', 'fid'] > 0


def test_fid_without_weights_says_which_file(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(RuntimeError) as e:
        ev.fid(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32))
    msg = str(e.value)
    assert '\n' not in msg
    assert str(tmp_path / 'hub' / 'checkpoints' / 'pt_inception-2015-12-05-6726825d.pth') in msg


def test_frechet_distance_self_zero_and_monotone_in_shift():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(1000, 16))
    assert abs(ev.frechet_distance(feats, feats)) < 1e-8
    other = rng.normal(size=(1000, 16))
    fds = [ev.frechet_distance(feats, other + s) for s in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert all(x < y for x, y in zip(fds, fds[1:]))
    assert fds[-1] == pytest.approx(16 * 9, rel=0.05)


def test_frechet_distance_matches_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 32)), rng.normal(size=(300, 32)) @ rng.normal(size=(32, 32)) * 0.3 + 0.2
    assert ev.frechet_distance(a, b) == pytest.approx(calculate_frechet_distance(*ev.gaussian_stats(a), *ev.gaussian_stats(b)), rel=1e-8)


def test_psnr_ssim_identical_and_known():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert ev.psnr(x, x).tolist() == [100.0, 100.0]
    assert torch.allclose(ev.ssim(x, x), torch.ones(2), atol=1e-5)
    assert ev.psnr(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.2)).item() == pytest.approx(20.0, abs=1e-3)


def _sliding_disc(m=8, size=32, travel=8.0, r=6.0):
    "A red disc with a black outline sliding `travel` pixels right over sky and grass."
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing='ij')
    frames = []
    for k in range(m):
        img = torch.where(yy < size * 0.7, torch.tensor([0.3, 0.5, 0.9]).view(3, 1, 1), torch.tensor([0.2, 0.6, 0.2]).view(3, 1, 1))
        d = ((xx - (size / 2 - travel / 2 + travel * k / (m - 1))) ** 2 + (yy - size / 2) ** 2).sqrt()
        img = torch.where(d < r, torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1), img)
        img = torch.where((d >= r) & (d < r + 1.5), torch.zeros(3, 1, 1), img)
        frames.append(img * 2 - 1)
    return torch.stack(frames)


def test_flow_beats_crossfade_on_translating_shape():
    clip = _sliding_disc()
    a, b, mid = clip[:1].expand(6, -1, -1, -1), clip[-1:].expand(6, -1, -1, -1), clip[1:-1]
    t = torch.arange(1, 7) / 7
    flow, fade = ev.psnr(ev.flow_interp(a, b, t), mid), ev.psnr(ev.crossfade(a, b, t), mid)
    assert flow.mean() > fade.mean() + 5, (flow, fade)
    assert (flow > fade).all()


def test_shipped_toon_net_loads_with_documented_features():
    net = ev.load_toon_net()
    assert ev.toon_net_path().is_file() and ev.toon_net_path().stat().st_size < 5e6
    assert ev.toon_features(torch.zeros(3, 3, 64, 64), net).shape == (3, 64)
    assert ev.toon_features(torch.zeros(2, 3, 128, 128), net).shape == (2, 64)
    assert {'recipe', 'accuracy', 'seconds'} <= set(net.log)


def test_shipped_toon_net_beats_chance_on_held_out_clips():
    net = ev.load_toon_net()
    x, y = ev.toon_frames(40, split='test')
    acc, chance = ev.toon_accuracy(net, x, y), ev._chance(y)
    assert acc['scenery'] > 0.9 and acc['style'] > 0.9, acc
    assert acc['n_chars'] > chance['n_chars'] + 0.1, (acc, chance)


def test_import_is_light():
    code = 'import sys, stillframes.eval; print(sorted(m for m in ("torchmetrics", "cv2", "pytorch_fid", "pandas", "seaborn") if m in sys.modules))'
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == '[]'


def test_cli_writes_results(tmp_path):
    ev.eval_cli(['--baselines', '--n', '3', '--frames', '4', '--size', '32', '--out', str(tmp_path), '--quiet'])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['results.csv', 'results.md', 'results.png', 'results_by_t.csv']
    import pandas as pd
    table = pd.read_csv(tmp_path / 'results.csv', index_col='method')
    assert list(table.index) == ['copy_nearest', 'crossfade', 'flow_interp']
    assert {'psnr', 'ssim', 'toon_fd'} <= set(table.columns)


# --- checkpoints on the command line -------------------------------------------------------------

@pytest.fixture(scope='module')
def one_step_ckpt(tmp_path_factory):
    "A real training checkpoint after one step of the tiny preset (about 2 s on a CPU)."
    from stillframes.train import Trainer, TrainConfig
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp('ckpt')
    cfg = TrainConfig.tiny(**{'optim.steps': 1, 'optim.batch_size': 2, 'log.tensorboard': False})
    tr = Trainer(cfg, out=out / 'run', device='cpu')
    return tr.fit(1, data=ToonClips(4, frames=8, size=64), progress=False)


def test_cli_scores_checkpoint_beside_baselines(one_step_ckpt, tmp_path, capsys):
    import pandas as pd
    ev.eval_cli([str(one_step_ckpt), '--n', '4', '--out', str(tmp_path / 'res'), '--quiet', '--device', 'cpu'])
    assert (tmp_path / 'res' / 'results.csv').is_file()
    table = pd.read_csv(tmp_path / 'res' / 'results.csv', index_col='method')
    assert list(table.index) == ['stillframes (checkpoint, 1 steps)', 'copy_nearest', 'crossfade', 'flow_interp']
    assert table.notna().all().all()
    out = capsys.readouterr().out
    assert '4 held-out clips, 64 px, 8 frames' in out and '| stillframes (checkpoint, 1 steps) |' in out


def test_cli_size_any_for_a_checkpoint(one_step_ckpt, tmp_path):
    "Models draw at any size: the test clips are --size pixels (default 64), within 32..256."
    args = ev.eval_parser().parse_args([str(one_step_ckpt)])
    models = ev.cli_models(args)
    assert ev.cli_size(args, models) == 64
    assert list(ev.cli_methods(args, models)) == [*models, *ev.BASELINES]
    assert ev.cli_size(ev.eval_parser().parse_args(['--size', '48', str(one_step_ckpt)]), models) == 48
    with pytest.raises(SystemExit) as e:
        ev.cli_size(ev.eval_parser().parse_args(['--size', '300', str(one_step_ckpt)]), models)
    assert e.value.code == "stillframes-eval: error: --size must be in 32..256, got 300"
    # checkpoints may stand after options, too; a 32-px run of a model trained at 32 px on 48-px clips
    ev.eval_cli(['--size', '48', str(one_step_ckpt), '--n', '2', '--frames', '4', '--quiet', '--device', 'cpu', '--out', str(tmp_path / 'r')])
    import pandas as pd
    assert len(pd.read_csv(tmp_path / 'r' / 'results.csv')) == 1 + len(ev.BASELINES)


def _run_cli(*argv):
    code = f'import sys, torch; torch.set_num_threads(1); from stillframes.eval import eval_cli; eval_cli(sys.argv[1:])'
    return subprocess.run([sys.executable, '-c', code, *argv], capture_output=True, text=True, timeout=120)


def test_cli_bad_checkpoint_is_one_line_error(tmp_path):
    bad = tmp_path / 'notes.pt'
    bad.write_text('not a checkpoint')
    missing = tmp_path / 'missing.pt'
    for path in (bad, missing):
        res = _run_cli(str(path), '--n', '2', '--out', str(tmp_path / 'res'))
        assert res.returncode != 0
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('stillframes-eval: ') and str(path) in lines[0], res.stderr
    assert not (tmp_path / 'res').exists()


def test_cli_out_of_range_size_in_subprocess(one_step_ckpt, tmp_path):
    res = _run_cli(str(one_step_ckpt), '--size', '1000', '--out', str(tmp_path / 'res'))
    assert res.returncode == 1
    assert res.stderr.strip() == "stillframes-eval: error: --size must be in 32..256, got 1000"
    assert not (tmp_path / 'res').exists()


def test_cli_needs_something_to_evaluate():
    with pytest.raises(SystemExit) as e: ev.eval_cli(['--out', 'unused'])
    assert e.value.code == 2


def test_cli_data_folder(tmp_path):
    from PIL import Image
    frames = tmp_path / 'frames'
    _write_pngs(frames, ToonClips(1, frames=14, size=32, split='test')[0][0])
    ev.eval_cli(['--baselines', '--data', str(frames), '--size', '32', '--n', '3', '--out', str(tmp_path / 'res'), '--quiet'])
    import pandas as pd
    assert list(pd.read_csv(tmp_path / 'res' / 'results.csv', index_col='method').index) == list(ev.BASELINES)
    assert '3 held-out clips, 32 px, 8 frames' in (tmp_path / 'res' / 'results.md').read_text()
    empty = tmp_path / 'empty'; empty.mkdir()
    for data in (empty, tmp_path / 'nowhere'):
        with pytest.raises(SystemExit) as e: ev.eval_cli(['--baselines', '--data', str(data), '--out', str(tmp_path / 'x')])
        assert isinstance(e.value.code, str) and '\n' not in e.value.code and str(data) in e.value.code


# --- latent walk ---------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def walk_parts():
    """A tiny random model, two ToonClips keyframes and PCA directions whose offsets show in 8-bit pixels.

    The directions' std (2, so a 3-std slider moves w by about 13) keeps the random generator well conditioned. With
    std 30 (w moved by about 200) its activations reach 1e7 and a 1e-6 relative change of w flips whole pixels,
    so a frame drawn alone and the same frame drawn inside a strip (different conv kernels, different float32
    summation order, which also differ by CPU instruction set) disagreed by up to 2 on the [-1, 1] scale."""
    from stillframes.interpolation import w_pca
    torch.set_num_threads(1)
    model = _random_walk_model()
    clip = ToonClips(1, frames=2, size=64, split='val')[0][0]
    dirs = w_pca(torch.randn(50, model.w_dim) * 2, 3)
    return model, clip[0], clip[1], dirs


def _random_walk_model():
    "The tiny preset untrained, its refiner's head randomised and its mask at 1/2, so that the frame depends on w (a zero head copies the warp)."
    from stillframes.train import build_from_config, TrainConfig
    torch.manual_seed(0)
    model = build_from_config(TrainConfig.tiny(**{'generator.mask_init': 0.0}))
    torch.nn.init.normal_(model.refiner.head.weight, std=0.05)
    return model


def test_latent_walk_sliders_redraw(walk_parts):
    model, a, b, dirs = walk_parts
    walk = ev.LatentWalk(model, a, b, n_frames=6, dirs=dirs)
    assert walk.frame_image.value[:8] == b'\x89PNG\r\n\x1a\n' and walk.strip_image.value[:8] == b'\x89PNG\r\n\x1a\n'
    walk.t_slider.value = 0.2
    at_02 = walk.frame_image.value
    walk.t_slider.value = 0.8
    assert walk.frame_image.value != at_02
    frame, strip = walk.frame_image.value, walk.strip_image.value
    walk.dir_sliders[0].value = 3.0
    assert walk.frame_image.value != frame and walk.strip_image.value != strip
    assert not torch.equal(walk.frame(0.8, 'lerp', [3.0, 0, 0]), walk.frame(0.8, 'lerp'))
    assert walk.strip('slerp', walk.offsets).shape == (6, 3, 64, 64)
    assert torch.allclose(walk.frame(0.4, 'lerp', walk.offsets), walk.strip('lerp', walk.offsets)[2], atol=1e-3)
    import ipywidgets
    assert isinstance(walk.widget, ipywidgets.VBox)


def _relative_sensitivity(walk, ws, t, eps=1e-6, seed=1):
    "Largest change of the frames drawn from styles `ws` when `ws` is perturbed by `eps` relative noise."
    noise = torch.randn(ws.shape, generator=torch.Generator().manual_seed(seed))
    return (walk._draw(ws, t) - walk._draw(ws * (1 + eps * noise), t)).abs().max().item()


def test_latent_walk_fixture_is_well_conditioned(walk_parts):
    "The cause of a frame/strip mismatch seen on other CPUs: directions so long that float32 rounding in G decides the frame."
    from stillframes.interpolation import w_pca
    model, a, b, dirs = walk_parts
    t = torch.linspace(0, 1, 6)
    walk = ev.LatentWalk(model, a, b, n_frames=6, dirs=dirs)
    ws = walk.styles(t, 'lerp', [3.0, -3.0, 3.0])                                   # the sliders at their ends
    assert _relative_sensitivity(walk, ws, t) < 1e-4
    long_dirs = w_pca(torch.randn(50, model.w_dim, generator=torch.Generator().manual_seed(0)) * 30, 3)
    far = ev.LatentWalk(model, a, b, n_frames=6, dirs=long_dirs)
    # The old generator (BatchNorm in eval mode, 4x4 constant input) reached 2.0 here; the refiner of chapter 03a,
    # modulated without BatchNorm and ending in a tanh on the warped frames, stays conditioned (measured 4.9e-4).
    assert _relative_sensitivity(far, far.styles(t, 'lerp', [3.0, 0, 0]), t) < 1e-2


def test_latent_walk_frame_matches_strip_on_every_isa(tmp_path):
    "`frame(t)` and `strip()[k]` agree under the portable kernels (`ATEN_CPU_CAPABILITY=default`) and the CPU's own."
    import subprocess, sys
    script = tmp_path / 'walk.py'
    script.write_text("""
import torch
import sys
sys.path.insert(0, %r)
from test_eval import _random_walk_model
from stillframes.eval import LatentWalk
from stillframes.data import ToonClips
from stillframes.interpolation import w_pca
model = _random_walk_model()
clip = ToonClips(1, frames=2, size=64, split='val')[0][0]
walk = LatentWalk(model, clip[0], clip[1], n_frames=6, dirs=w_pca(torch.randn(50, model.w_dim) * 2, 3))
for off in ([0, 0, 0], [3.0, 0, 0], [-3.0, 3.0, -3.0]):
    print((walk.frame(0.4, 'lerp', off) - walk.strip('lerp', off)[2]).abs().max().item())
""" % str(Path(__file__).parent))
    for isa in ('default', None):
        env = {k: v for k, v in __import__('os').environ.items() if k != 'ATEN_CPU_CAPABILITY'} | ({'ATEN_CPU_CAPABILITY': isa} if isa else {})
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        diffs = [float(x) for x in out.stdout.split()]
        assert len(diffs) == 3 and max(diffs) < 1e-4, (isa, diffs)


def test_latent_walk_update_reads_widgets(walk_parts):
    from stillframes.utils import to_uint8, frame_strip
    model, a, b, dirs = walk_parts
    walk = ev.LatentWalk(model, a, b, dirs=dirs)
    walk.dir_sliders[1].value, walk.t_slider.value, walk.method_menu.value = -2.0, 0.0, 'slerp'
    walk.frame_image.value = walk.strip_image.value = b''
    walk.update()
    assert walk.frame_image.value == ev._png(to_uint8(walk.frame(0.0, 'slerp', [0, -2.0, 0])), walk.scale)
    assert walk.strip_image.value == ev._png(frame_strip(walk.strip('slerp', [0, -2.0, 0])), walk.scale // 2)


def test_latent_walk_motion_only_with_a_path(walk_parts):
    model, a, b, dirs = walk_parts
    assert model.path is None
    walk = ev.LatentWalk(model, a, b, dirs=dirs, n_dirs=2)
    assert list(walk.method_menu.options) == ['lerp', 'slerp'] and len(walk.dir_sliders) == 2
    with pytest.raises(ValueError, match='no learned path'): walk.frame(0.5, 'motion')
    with pytest.raises(ValueError, match='one per direction'): walk.frame(0.5, 'lerp', [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r't must lie in \[0, 1\]'): walk.frame(1.5)
    with pytest.raises(ValueError, match='frame_b'): ev.LatentWalk(model, a[:, :32], b, dirs=dirs)


def test_latent_walk_motion_path():
    from stillframes.train import build_from_config, TrainConfig
    torch.manual_seed(0)
    model = build_from_config(TrainConfig.tiny(**{'path.method': 'motion'}))
    a, b = ToonClips(1, frames=2, size=64, split='val')[0][0]
    walk = ev.LatentWalk(model, a, b, n_frames=5, dirs=ev.style_pca(model, 2, n=8), n_dirs=2)
    assert walk.method_menu.options == ('lerp', 'slerp', 'motion') and walk.method_menu.value == 'motion'
    p = walk.path('motion')
    assert torch.allclose(walk.styles(0.5, 'motion')[0], p[2], atol=1e-6)
    assert torch.allclose(walk.styles(0.625, 'motion')[0], (p[2] + p[3]) / 2, atol=1e-6)
    assert walk.strip('motion').shape == (5, 3, 64, 64)
