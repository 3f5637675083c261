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
    assert list(table.columns) == ['psnr', 'ssim', 'toon_fd', 'fid', 'ms_per_frame']
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
