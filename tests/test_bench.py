"Every bench in bench/ runs at a tiny size, so none can rot (they print figures; the figures themselves are not tested)."
import os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent.parent / 'bench'


def bench(name, *args, tmp_path, env=None):
    e = {**os.environ, 'STILLFRAMES_CACHE': str(tmp_path / 'cache'), 'PIP_NO_INDEX': '1', 'OMP_NUM_THREADS': '1', **(env or {})}
    r = subprocess.run([sys.executable, str(BENCH / name), *map(str, args)], capture_output=True, text=True, cwd=tmp_path, env=e, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_peers_tiny_and_the_peer_skipped_with_a_reason(tmp_path):
    out = bench('peers.py', '--settings', 'a', '--clips', '2', '--threads', '1', '--out', tmp_path / 'peers', tmp_path=tmp_path)
    assert 'RIFE v4.2x: skipped (' in out                                  # no wheel and no index here
    t = pd.read_csv(tmp_path / 'peers' / 'results_a.csv')
    assert {'psnr', 'ssim', 'line_cd', 'toon_fd', 'ms_per_frame'} <= set(t.columns) and len(t) >= 6


def test_speed_tiny(tmp_path):
    out = bench('speed.py', '--sizes', '64x64', '--reps', '1', '--threads', '1', '--no-peer', '--clip-frames', '2', '--out', tmp_path / 'speed', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'speed' / 'speed.csv')
    assert list(t.method) == ['stillframes'] and t.s_per_frame[0] > 0 and t.peak_mb[0] > 0
    assert 'stillframes-interpolate --factor 2 on 2 frames at 64x64 -> 3 frames' in out and 'torch' in out


def test_motion_and_model_step_tiny(tmp_path):
    assert 'learned' in bench('motion.py', '--size', '32', '--clips', '2', '--threads', '1', tmp_path=tmp_path)
    assert bench('model_step.py', '--ngf', '8', '--ndf', '8', '--w-dim', '16', '--batch', '2', '--size', '32', '--frames', '4', '--repeats', '1', '--threads', '1', tmp_path=tmp_path)


def test_ablations_tiny(tmp_path):
    bench('ablations.py', '--steps', '2', '--seeds', '0', '1', '--clips', '2', '--n-clips', '16', '--only', 'full (tiny)', 'no sequence D',
          'learned timing u(t) (8 pieces)', 'no refiner (the warp alone)', '--out', tmp_path / 'runs', '--csv', tmp_path / 'abl', tmp_path=tmp_path)
    s = pd.read_csv(tmp_path / 'abl' / 'summary.csv')
    assert len(s) == 4 and (s.seeds == 2).all()
    r = pd.read_csv(tmp_path / 'abl' / 'runs.csv').set_index('variant')
    assert r.loc['no refiner (the warp alone)', 'paint'].isna().all() and r.drop('no refiner (the warp alone)').paint.between(0, 1).all()
    assert s.set_index('variant').loc['no refiner (the warp alone)', 'painted'] == '–'
    g = pd.read_csv(tmp_path / 'abl' / 'mask_log.csv')                  # the mask's saturation per logged step, only where there is a mask
    assert 'no refiner (the warp alone)' not in set(g.variant) and len(g.groupby(['variant', 'seed'])) == 6 and g.mask_sat.between(0, 1).all()
    import json
    done = tmp_path / 'runs' / 'full__tiny' / 'seed0' / 'result.json'          # a result from before the painted share was measured
    done.write_text(json.dumps({k: v for k, v in json.loads(done.read_text()).items() if k != 'paint'}))
    bench('ablations.py', '--steps', '2', '--seeds', '0', '--clips', '2', '--n-clips', '16', '--only', 'full (tiny)',   # the base alone, reused
          '--out', tmp_path / 'runs', '--csv', tmp_path / 'base', tmp_path=tmp_path)
    assert len(pd.read_csv(tmp_path / 'base' / 'summary.csv')) == 1
    assert 0 <= json.loads(done.read_text())['paint'] <= 1 and pd.read_csv(tmp_path / 'base' / 'runs.csv').paint.between(0, 1).all()
    u = pd.read_csv(tmp_path / 'abl' / 'timing.csv')                     # only the variant with a learned timing has one
    assert list(u.variant.unique()) == ['learned timing u(t) (8 pieces)'] and len(u) == 2 and u.filter(like='t=').shape[1] == 8
    assert (tmp_path / 'runs' / 'no_sequence_D' / 'seed1' / 'result.json').is_file()


def test_painted_share_of_an_untrained_refiner(monkeypatch):
    import torch
    from stillframes.train import TrainConfig, build_from_config
    from stillframes.data import ToonClips
    monkeypatch.syspath_prepend(str(BENCH))
    from ablations import painted
    torch.manual_seed(0)
    clips = torch.stack([c for c, *_ in ToonClips(3, frames=4, size=32, split='test')])
    model = build_from_config(TrainConfig.tiny(size=32, frames=4))
    assert abs(painted(model, clips, batch=2) - (1 - torch.sigmoid(torch.tensor(3.0)).item())) < 1e-5   # the head starts at the mask's init logit
    with torch.no_grad(): model.refiner.head.bias[3] = -3.0
    assert abs(painted(model, clips) - torch.sigmoid(torch.tensor(3.0)).item()) < 1e-5
    assert painted(build_from_config(TrainConfig.tiny(size=32, frames=4, **{'generator.refiner': False})), clips) is None   # no refiner: nothing painted, not 0


def test_finetune_tiny(tmp_path):
    bench('finetune.py', '--minutes', '0.05', '--no-peer', '--threads', '1', '--out', tmp_path / 'ft', '--run', tmp_path / 'run', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'ft' / 'finetune.csv')
    assert list(t.method)[0] == 'cross-fade' and len(t) == 3 and (t.frames == 90).all()


def test_train_speed_latency_and_metric_speed_tiny(tmp_path):
    out = bench('train_speed.py', '--presets', 'tiny', '--sizes', '32', '--steps', '1', '--warmup', '1', '--threads', '1', '--n-clips', '8',
                '--out', tmp_path / 'ts', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'ts' / 'train_speed.csv')
    assert list(t.preset) == ['tiny'] and t.frames_per_s[0] > 0 and t.peak_mb[0] > 0 and 'CPUs' in out and 'torch' in out
    prof = bench('train_speed.py', '--profile', 'tiny', '--sizes', '32', '--steps', '1', '--warmup', '1', '--threads', '1', '--n-clips', '8', tmp_path=tmp_path)
    assert 'aten::' in prof and 'Self CPU' in prof
    bench('latency.py', '--sizes', '64x64', '48x80', '--frames', '4', '--reps', '1', '--threads', '1', '--out', tmp_path / 'lat', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'lat' / 'latency.csv')
    assert list(t['size']) == ['64x64', '48x80'] and (t.s_per_call > 0).all()
    out = bench('metric_speed.py', '--n', '4', '--sizes', '64', '--threads', '1', '--out', tmp_path / 'ms', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'ms' / 'metric_speed.csv')
    assert {'toon FD features (ToonNet)', 'line chamfer (pairs)'} <= set(t.measure) and (t.images_per_s > 0).all()
    assert ('FID features (Inception)' in set(t.measure)) == ('FID features skipped' not in out)


def test_ceiling_tiny_marks_the_targets(tmp_path):
    peers = tmp_path / 'peers'; peers.mkdir()
    pd.DataFrame({'psnr': [10.0, 11.0], 'ssim': [0.5, 0.4], 'toon_fd': [500.0, 600.0]},
                 index=pd.Index(['RIFE v4.2x (peer)', 'crossfade'], name='method')).to_csv(peers / 'results_a.csv')
    out = bench('ceiling.py', '--settings', 'a', '--clips', '2', '--draws', '2', '--threads', '1', '--peers', peers, '--out', tmp_path / 'c', tmp_path=tmp_path)
    assert 'PSNR >= 12.00 dB, SSIM >= 0.5100, toon FD <= 400' in out
    t = pd.read_csv(tmp_path / 'c' / 'results_a.csv', index_col=0)
    for col, ok in (('psnr', t.psnr >= 12), ('ssim', t.ssim >= 0.51), ('toon_fd', t.toon_fd <= 400)): assert (t[f'{col}_ok'] == ok).all()
    assert list(t.index)[:3] == ['crossfade', 'linear', 'linear + 0.1 prior mean'] and len(t) == 17
    assert list(t.index)[6:11] == ['prior mean', 'blind guess', 'told the hop', 'told the ease', 'told the ease and bend']
    assert "cross-fade row differs from this run's" in out
    assert list(t.index)[-2:] == ['informed guess + 0.5 informed mean', 'informed mean']
    assert (t.all_three == (t.psnr >= 12) & (t.ssim >= 0.51) & (t.toon_fd <= 400)).all()
    out = bench('ceiling.py', '--settings', 'b', '--clips', '2', '--draws', '1', '--threads', '1', '--peers', peers, '--out', tmp_path / 'c', tmp_path=tmp_path)
    assert 'run bench/peers.py first' in out and 'all_three' not in pd.read_csv(tmp_path / 'c' / 'results_b.csv').columns


def test_ceiling_refuses_bad_arguments_and_keeps_other_settings(tmp_path):
    for bad in (('--clips', '0'), ('--draws', '0'), ('--threads', '-1')):
        e = {**os.environ, 'STILLFRAMES_CACHE': str(tmp_path / 'cache')}
        r = subprocess.run([sys.executable, str(BENCH / 'ceiling.py'), *bad, '--out', str(tmp_path / 'x')], capture_output=True, text=True, env=e, timeout=300)
        assert r.returncode == 2 and 'must be >= 1' in r.stderr.strip().splitlines()[-1], r.stderr[-500:]
    out = tmp_path / 'c'; out.mkdir()
    (out / 'results_b.md').write_text('(b) an earlier table\n')
    bench('ceiling.py', '--settings', 'a', '--clips', '1', '--draws', '1', '--threads', '1', '--peers', tmp_path / 'none', '--out', out, tmp_path=tmp_path)
    text = (out / 'results.md').read_text()
    assert text.startswith('(a) 1 held-out') and '(b) an earlier table' in text


def test_cues_tiny(tmp_path):
    bench('cues.py', '--train', '64', '--test', '20', '--epochs', '1', '--motions', '1.0', '--threads', '1', '--out', tmp_path / 'q', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'q' / 'cues.csv')
    assert len(t) == 1 and 0 <= t.ease_acc[0] <= 1 and 0.25 <= t.ease_chance[0] <= 1 and t.test_scenes[0] == 20


def test_cues_score_draws_from_the_reading_and_marks_the_targets(tmp_path):
    peers = tmp_path / 'peers'; peers.mkdir()
    pd.DataFrame({'psnr': [10.0, 11.0], 'ssim': [0.5, 0.4], 'toon_fd': [500.0, 600.0]},
                 index=pd.Index(['RIFE v4.2x (peer)', 'crossfade'], name='method')).to_csv(peers / 'results_a.csv')
    out = bench('cues.py', '--train', '64', '--test', '20', '--epochs', '1', '--motions', '1.0', '0.5', '--score', '--clips', '2',
                '--threads', '1', '--peers', peers, '--out', tmp_path / 'q', tmp_path=tmp_path)
    assert 'no bench/peers.py setting has motion 0.5' in out and 'PSNR >= 12.00 dB' in out
    t = pd.read_csv(tmp_path / 'q' / 'cues_a.csv', index_col=0)
    test_rows = ['crossfade', 'blind guess', 'told the hop', 'told the ease and hop', 'read by the CNN (ease, hop)']
    assert list(t.index) == test_rows and (t.all_three == (t.psnr >= 12) & (t.ssim >= 0.51) & (t.toon_fd <= 400)).all()
    assert not (tmp_path / 'q' / 'cues_b.csv').exists() and (tmp_path / 'q' / 'cues_c.csv').exists()   # (c) has motion 1.0 too
    bench('cues.py', '--train', '64', '--test', '20', '--epochs', '1', '--motions', '0.3', '--bend', '--score', '--clips', '1',
          '--threads', '1', '--peers', peers, '--out', tmp_path / 'q', '--name', 'bend', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'q' / 'bend_b.csv', index_col=0)
    assert list(t.index) == test_rows + ['informed guess', 'read by the CNN (ease, hop, bend)']
    row = pd.read_csv(tmp_path / 'q' / 'bend.csv').iloc[0]
    assert row.bend_mae >= 0 and 0.1 < row.bend_mae_if_zero < 0.4                 # |bend| of uniform [-0.5, 0.5] averages 0.25
    e = {**os.environ, 'STILLFRAMES_CACHE': str(tmp_path / 'cache')}
    r = subprocess.run([sys.executable, str(BENCH / 'cues.py'), '--clips', '0', '--out', str(tmp_path / 'x')], capture_output=True, text=True, env=e, timeout=300)
    assert r.returncode == 2 and 'must be >= 1' in r.stderr.strip().splitlines()[-1]


def test_cues_score_draws_only_what_the_network_reads(tmp_path, monkeypatch):
    import numpy as np, torch
    monkeypatch.setenv('STILLFRAMES_CACHE', str(tmp_path / 'cache'))
    monkeypatch.syspath_prepend(str(BENCH))
    import cues

    class Reads(torch.nn.Module):
        "Reads every character as in-out, not hopping (the blind guess), or as `ease`, hopping."
        def __init__(self, ease=cues.INOUT, hop=0): super().__init__(); self.bend, self.ease, self.hop = False, ease, hop
        def forward(self, x):
            out = torch.zeros(len(x), 8)
            out[:, self.ease] = 1.0; out[:, 4 + self.hop] = 1.0
            return out

    cols = ['psnr', 'ssim', 'line_cd', 'toon_fd']
    t, title = cues.score(Reads(), 64, 'a', tmp_path / 'none', n_clips=2)
    assert np.allclose(t.loc['read by the CNN (ease, hop)', cols], t.loc['blind guess', cols]) and 'no targets' in title
    t2, _ = cues.score(Reads(ease=0, hop=1), 64, 'a', tmp_path / 'none', n_clips=2)
    assert not np.allclose(t2.loc['read by the CNN (ease, hop)', cols], t2.loc['blind guess', cols])   # another reading, another drawing
    assert np.allclose(t2.loc['blind guess', cols], t.loc['blind guess', cols])


def test_cues_crops_centre_on_each_character(tmp_path, monkeypatch):
    import torch
    monkeypatch.syspath_prepend(str(BENCH))
    import cues
    from stillframes.data import ToonClips, char_pose, render_scene, LAYERS
    f = torch.zeros(3, 20, 30); f[:, 5, 27] = 1.0                    # one lit pixel, row 5, column 27 (centre x = 27.5)
    c = cues._crop(f, 27.5, 5.5, 8)
    assert c.shape == (3, 8, 8) and c[0, 4, 4] == 1.0 and c.sum() == 3.0   # at the crop's centre, the rest zero-padded
    s = ToonClips(3, size=64, split='test').scene(1)
    x = cues.char_crops(s, 64, 32)
    assert x.shape == (len(s['chars']), 6, 32, 32)
    j = len(s['chars']) - 1                                           # the front character, drawn over the rest
    for k, t in enumerate((0.0, 1.0)):                                # its layer id at the centre of both crops
        (cx, cy), _, _ = char_pose(s['chars'][j], t)
        frame, layer = render_scene(s, t, 64, layers=True)
        i0, j0 = round(cy * 64 - 0.5), round((cx - s['pan'] * t) * 64 - 0.5)
        assert layer[i0, j0] == len(LAYERS) + j and torch.equal(x[j, 3 * k:3 * k + 3, 16, 16], frame[:, i0, j0])
    e = {**os.environ, 'STILLFRAMES_CACHE': str(tmp_path / 'cache')}
    r = subprocess.run([sys.executable, str(BENCH / 'cues.py'), '--crop', '4', '--out', str(tmp_path / 'x')], capture_output=True, text=True, env=e, timeout=300)
    assert r.returncode == 2 and '--crop must be between 8' in r.stderr.strip().splitlines()[-1]


def test_handover_tiny_sweeps_gamma_and_marks_the_targets(tmp_path):
    peers = tmp_path / 'peers'; peers.mkdir()
    pd.DataFrame({'psnr': [10.0, 11.0], 'ssim': [0.5, 0.4], 'toon_fd': [500.0, 600.0]},
                 index=pd.Index(['RIFE v4.2x (peer)', 'crossfade'], name='method')).to_csv(peers / 'results_a.csv')
    out = bench('handover.py', '--settings', 'a', '--clips', '2', '--gammas', '1', '6', '100', '--threads', '1', '--peers', peers,
                '--out', tmp_path / 'h', tmp_path=tmp_path)
    assert 'PSNR >= 12.00 dB, SSIM >= 0.5100, toon FD <= 400' in out
    t = pd.read_csv(tmp_path / 'h' / 'results_a.csv', index_col=0)
    assert list(t.index) == ['crossfade', 'copy_nearest', 'gamma 1', 'gamma 6 (shipped)', 'gamma 100']
    assert t.loc['gamma 1', 'psnr'] != t.loc['gamma 100', 'psnr']                   # the prior is applied: another gamma, other frames
    assert (t.all_three == (t.psnr >= 12) & (t.ssim >= 0.51) & (t.toon_fd <= 400)).all()


def test_hop_lift_is_all_drawn_by_the_true_flow_and_none_by_no_motion(tmp_path, monkeypatch):
    import torch
    monkeypatch.syspath_prepend(str(BENCH))
    import hop
    from stillframes.data import ToonClips
    ds = ToonClips(6, frames=5, size=32, split='test', flow=True)
    truth = {float(c[0].sum()): at['flow'][1:-1].flatten(1, 2) for c, at in (ds[i] for i in range(len(ds)))}
    exact = lambda a, b, t: {'flow': truth[float(a[0].sum())]}
    still = lambda a, b, t: {'flow': torch.zeros(a.shape[0], 4, *a.shape[-2:])}
    df = hop.lifts(exact, ds)
    hoppers = df[df.hops > 0]
    assert len(hoppers) > 0 and (hoppers.true_lift <= 0).all() and (hoppers.true_lift < 0).any() and (df[df.hops == 0].true_lift == 0).all()
    assert np.allclose(df.drawn_lift, df.true_lift, atol=1e-4)
    t = hop.summary(df).set_index('characters')
    assert np.isclose(t.loc['all hopping', 'share'], 1.0) and np.isnan(t.loc['not hopping', 'share'])
    d0 = hop.lifts(still, ds)                       # no motion at all: the lift drawn is the path's own, not the hop
    assert not np.allclose(d0.drawn_lift, d0.true_lift)
    up = lambda a, b, t: {'flow': exact(a, b, t)['flow'] + torch.tensor([0., 2., 0., 2.]).view(1, 4, 1, 1)}   # fetched 2 px lower
    assert np.allclose(hop.lifts(up, ds).drawn_lift, df.true_lift - 2, atol=1e-4)                          # = drawn 2 px higher
    out = bench('hop.py', '--settings', 'a', '--clips', '3', '--threads', '1', '--out', tmp_path / 'm', tmp_path=tmp_path)
    assert 'share' in out and (tmp_path / 'm' / 'hop.csv').is_file()


def test_hop_told_starts_as_the_shipped_network_and_runs_tiny(tmp_path, monkeypatch):
    import torch
    monkeypatch.syspath_prepend(str(BENCH))
    import hop_told
    from stillframes.motion import load_flow_net
    from stillframes.data import ToonClips
    c = ToonClips(1, frames=4, size=(48, 80), split='test')[0][0]
    a, b, t = c[:1].expand(2, -1, -1, -1), c[-1:].expand(2, -1, -1, -1), torch.tensor([0.3, 0.7])
    ref, net = load_flow_net().float().eval(), hop_told.Motion(hop_told.told(load_flow_net().float())).eval()
    ones = torch.ones(2, 48, 80, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(net(a, b, t, ones, ones)['flow'], ref(a, b, t)['flow'], atol=1e-4)   # zero weights on the new channel
        net.net.blocks[0].head[0][0].weight.data[:, 6 + ref.feat] = 1.0                        # ... which the blocks do read
        assert not torch.allclose(net(a, b, t, ones, ones)['flow'], ref(a, b, t)['flow'], atol=1e-4)
    bench('hop_told.py', '--told', '--steps', '2', '--clips', '6', '--test', '3', '--threads', '1', '--out', tmp_path / 'm', tmp_path=tmp_path)
    s = pd.read_csv(tmp_path / 'm' / 'hop_told_scores.csv', index_col=0)
    assert list(s.index) == ['fine-tuned, told the hop (gamma 6)'] and np.isfinite(s.psnr).all()


def test_timing_told_maps_each_character_and_runs_tiny(tmp_path, monkeypatch):
    import torch
    monkeypatch.syspath_prepend(str(BENCH))
    import timing_told
    from stillframes.data import ToonClips, render_scene, ease, LAYERS
    ds = ToonClips(3, frames=8, size=64, split='test')
    s = ds.scene(0)
    u, chars = timing_told.timing_map(s, 0.3, ds)
    _, lay = render_scene(s, 0.3, ds.hw, ds.style, ds.ss, layers=True)
    assert u.shape == chars.shape == (1, 64, 64) and torch.equal(chars[0], torch.from_numpy(lay >= len(LAYERS)))
    for j, ch in enumerate(s['chars']):
        on = torch.from_numpy(lay == len(LAYERS) + j)
        if on.any(): assert torch.allclose(u[0][on], torch.tensor(ease(0.3, ch['ease'])))
    assert torch.allclose(u[0][torch.from_numpy(lay < len(LAYERS))], torch.tensor(ease(0.3, 3)))   # the camera's in-out ease
    net = timing_told.load_flow_net().float().eval()
    net.gamma = 6.0                                                       # the hand-over prior, as timing_told.run sets it
    x, y = ds[0][0][:1], ds[0][0][-1:]
    same = (timing_told.interpolate_frames(net, x, y, torch.full((1, 1, 64, 64), 0.3)),
            timing_told.interpolate_frames(net, x, y, torch.tensor([0.3])))
    assert torch.allclose(*same, atol=1e-3)
    data = timing_told.TimedTriplets(3)                                   # the batches carry the time map, mirrored and reversed with the frames
    _, _, _, u, _, _ = data.batch([0, 1], [2, 2], flip=torch.tensor([True, False]), reverse=torch.tensor([True, False]))
    u0 = data.times[0][2].float()
    assert u.shape == (2, 1, 64, 64) and torch.allclose(u[0], (1 - u0).flip(-1)) and torch.allclose(u[1], data.times[1][2].float())
    assert data.batch([0], [2], half=True)[3].shape == (1, 1, 32, 32)
    data.told = False
    assert data.batch([0, 1], [2, 3])[3].tolist() == [2 / 8, 3 / 8]       # the control's batches: the clock
    bench('timing_told.py', '--settings', 'a', '--clips', '2', '--fine-tune', '2', '--train-clips', '3', '--threads', '1', '--out', tmp_path / 'm', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'm' / 'timing_told.csv')
    assert len(t) == 4 and t.method.str.contains('fine-tuned 2 steps').sum() == 2 and t.method.str.contains("u\\(t\\)").sum() == 2 and np.isfinite(t[['psnr', 'epe_chars_px', 'epe_rest_px']]).all().all()


def test_global_match_measures_correspondence_resumes_and_runs_tiny(tmp_path, monkeypatch):
    import pytest, torch
    monkeypatch.syspath_prepend(str(BENCH))
    import global_match as gm
    from stillframes.data import ToonClips, render_scene, LAYERS
    match = gm.GlobalMatch()
    f01, f10 = match(torch.rand(2, 3, 128, 256) * 2 - 1, torch.rand(2, 3, 128, 256) * 2 - 1)
    assert f01.shape == f10.shape == (2, 2, 128, 256)                  # matched at long side 64, flows at the frames' own size
    ds = ToonClips(2, frames=8, size=64, split='test', flow=True)       # zero flow scores the true displacement itself
    t = gm.correspondence('a', {'zero': lambda x, y: torch.zeros_like(x[:, :2])}, clips=2)
    s = n = 0.0
    for i in range(2):
        _, at = ds[i]
        w = at['visible'][-1][0] & gm.timing_map(ds.scene(i), 1.0, ds)[1][0]
        s += float(at['flow'][-1][0].float().norm(dim=0)[w].sum()); n += float(w.sum())
    assert abs(t.epe_chars_px[0] - s / n) < 1e-3
    data = gm.FlowTriplets(3, 64, seed=1, progress=False)
    ck = tmp_path / 'gm.pt'
    curve = gm.train_match(match, data, 2, ck)
    assert len(curve) == 2 and torch.load(ck)['step'] == 2
    assert gm.train_match(gm.GlobalMatch(), data, 2, ck) == curve       # resumed at the end: no step is taken again
    with pytest.raises(ValueError, match='2 steps'): gm.train_match(gm.GlobalMatch(), data, 5, ck)
    with pytest.raises(ValueError, match='3 clips'): gm.train_match(gm.GlobalMatch(), gm.FlowTriplets(2, 64, seed=1, progress=False), 2, ck)
    cdata = gm.CharTriplets(3, 64, seed=1, progress=False)             # the masks belong to the clips' own scenes and keyframes
    for i in range(3):
        ds_i = ToonClips(3, frames=cdata.m, size=64, split='train', seed=1, motion=(0.5, 1.0, 1.5)[i])
        frame, lay0 = render_scene(ds_i.scene(i), 0.0, ds_i.hw, ds_i.style, ds_i.ss, layers=True)
        _, lay1 = render_scene(ds_i.scene(i), 1.0, ds_i.hw, ds_i.style, ds_i.ss, layers=True)
        frame = ((frame + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        assert torch.equal(cdata.frames[i][0], frame) and torch.equal(cdata.chars[i], torch.from_numpy(np.stack([lay0, lay1]) >= len(LAYERS)))
        assert cdata.chars[i].dtype == torch.bool and 0 < cdata.chars[i].float().mean() < 0.5
    c = cdata.char_masks([2, 2], flip=torch.tensor([True, False]))
    assert torch.equal(c[0], cdata.chars[2].flip(-1)) and torch.equal(c[1], cdata.chars[2])
    ckb = tmp_path / 'gmb.pt'
    assert len(gm.train_match(gm.GlobalMatch(), cdata, 2, ckb, balance=True)) == 2 and torch.load(ckb)['balance']
    with pytest.raises(ValueError, match='balance=True'): gm.train_match(gm.GlobalMatch(), cdata, 2, ckb)
    with pytest.raises(TypeError, match='CharTriplets'): gm.train_match(gm.GlobalMatch(), data, 2, None, balance=True)
    wrapped = gm.Matched(gm.load_flow_net().float().eval(), match)
    wrapped.gamma = 6.0
    assert wrapped.net.gamma == 6.0 and not any(p.requires_grad for p in wrapped.match.parameters())
    bench('global_match.py', '--steps', '2', '--train-clips', '3', '--fine-tune', '2', '--settings', 'a', '--clips', '2', '--threads', '1',
          '--ckpt', tmp_path / 'b.pt', '--out', tmp_path / 'm', tmp_path=tmp_path)
    bench('global_match.py', '--steps', '2', '--train-clips', '3', '--fine-tune', '0', '--balance', '--settings', 'a', '--clips', '2',
          '--threads', '1', '--ckpt', tmp_path / 'c.pt', '--out', tmp_path / 'm', '--name', 'bal', tmp_path=tmp_path)
    assert 'the characters and the rest weighed alike' in (tmp_path / 'm' / 'bal.md').read_text()
    assert 'resumed at' not in (tmp_path / 'm' / 'bal.md').read_text()
    bench('global_match.py', '--steps', '2', '--train-clips', '3', '--fine-tune', '0', '--balance', '--settings', 'a', '--clips', '2',
          '--threads', '1', '--ckpt', tmp_path / 'c.pt', '--out', tmp_path / 'm', '--name', 'bal', tmp_path=tmp_path)
    assert 'resumed at step 2' in (tmp_path / 'm' / 'bal.md').read_text()       # the second run trains nothing and says so
    r = pd.read_csv(tmp_path / 'm' / 'global_match.csv')
    assert (r.kind == 'correspondence').sum() == 4 and (r.kind == 'in-between').sum() == 4 and np.isfinite(r.epe_chars_px).all()


def test_corr_oracle_starts_from_the_true_keyframe_flows_and_runs_tiny(tmp_path, monkeypatch):
    import pytest, torch
    monkeypatch.syspath_prepend(str(BENCH))
    import corr_oracle as co
    data = co.CorrTriplets(3)
    m, fl = data.m, lambda f: f.flip(-1) * torch.tensor([-1., 1.]).view(2, 1, 1)    # mirrored: x flows change sign
    data.batch([0, 1, 2], [1, 2, 3], flip=torch.tensor([False, False, True]), reverse=torch.tensor([False, True, False]))
    f01, f10 = data.corr
    assert torch.equal(f01[0], data.flows[0][0][2:].float()) and torch.equal(f10[0], data.flows[0][m - 1][:2].float())
    assert torch.equal(f01[1], data.flows[1][m - 1][:2].float()) and torch.equal(f10[1], data.flows[1][0][2:].float())  # played backwards
    assert torch.equal(f01[2], fl(data.flows[2][0][2:].float()))
    data.batch([0], [1], half=True)
    assert torch.equal(data.corr[0][0], data.flows[0][0][2:, ::2, ::2].float() / 2)
    table = co.true_corr('a', 2)
    ds = co.ToonClips(2, frames=8, size=64, split='test', motion=1.0, flow=True)
    (clip, at), (clip1, _) = ds[0], ds[1]
    a, b = torch.stack([clip[0], clip1[0]]), torch.stack([clip[-1], clip1[-1]])
    lin = co.Linear(table, gamma=6.0)
    out0, out1 = lin(a, b, torch.zeros(2)), lin(a, b, torch.ones(2))
    assert torch.equal(out0['flow'][0, 2:], at['flow'][0][1].float()) and out0['flow'][:, :2].abs().max() == 0   # at A: zero to A, F_0->1 to B
    assert torch.equal(out1['flow'][0, :2], at['flow'][-1][0].float()) and out1['flow'][:, 2:].abs().max() == 0
    half = lin(a, b, torch.full((2,), 0.5))
    from stillframes.motion import time_flows
    ft0, ft1 = time_flows(*co.lookup(table, a), torch.full((2,), 0.3))   # between the keyframes: Super SloMo's eq. 4, as the library writes it
    assert torch.allclose(lin(a, b, torch.full((2,), 0.3))['flow'], torch.cat([ft0, ft1], 1), atol=1e-5)
    assert torch.allclose(lin(a, b, torch.full((2, 1, 64, 64), 0.5))['flow'], half['flow']) and torch.allclose(half['mask'], torch.tensor(0.5))
    net = co.load_flow_net().float().eval()
    started = co.Started(net, table)
    started.gamma = 6.0
    with torch.no_grad():
        s, plain = started(a, b, torch.full((2,), 0.5))['flow'], net(a, b, torch.full((2,), 0.5))['flow']
        assert net.gamma == 6.0 and torch.equal(s, net(a, b, torch.full((2,), 0.5), corr=co.lookup(table, a))['flow']) and not torch.equal(s, plain)
    with pytest.raises(KeyError, match='not one of'): co.lookup(table, b)
    import global_match as gm
    gm.train_match(gm.GlobalMatch(), gm.FlowTriplets(3, 64, seed=1, progress=False), 1, tmp_path / 'gm.pt')
    bench('corr_oracle.py', '--settings', 'a', '--clips', '2', '--fine-tune', '2', '--train-clips', '3', '--threads', '1', '--matcher', tmp_path / 'gm.pt',
          '--out', tmp_path / 'm', tmp_path=tmp_path)
    t = pd.read_csv(tmp_path / 'm' / 'corr_oracle.csv')
    assert len(t) == 16 and t.method.str.contains('fine-tuned 2 steps').sum() == 2 and t.method.str.contains('splatted').sum() == 8
    assert np.isfinite(t[['psnr', 'toon_fd']]).all().all() and t.epe_chars_px.isna().sum() == 8    # the splatted rows have no backward flows
    md = (tmp_path / 'm' / 'corr_oracle.md').read_text()
    assert 'characters moved rigidly' in md and 'gm.pt, 1 steps' in md
    rigid = co.rigid_corr('a', 2)                                      # the scenery keeps its true flow, the characters lose their turn
    lay = torch.from_numpy(co.render_scene(ds.scene(0), 0.0, ds.hw, ds.style, ds.ss, layers=True)[1])
    key = float(clip[0].double().sum())
    d = (rigid[key][0] - table[key][0]).norm(dim=0)
    assert d[lay < len(co.LAYERS)].max() == 0 and d[lay >= len(co.LAYERS)].mean() > 0.5
    own = co.estimated_corr('a', co.network_flows(net), 2)
    assert set(own) == set(table) and own[key][0].shape == table[key][0].shape == (2, 64, 64)


def test_splat_moves_pixels_by_their_own_flow_and_the_metric_picks_the_front(monkeypatch):
    import torch
    monkeypatch.syspath_prepend(str(BENCH))
    import corr_oracle as co
    x = torch.rand(2, 3, 8, 10)
    out, cov = co.splat(x, torch.zeros(2, 2, 8, 10), torch.randn(2, 1, 8, 10))
    assert torch.allclose(out, x, atol=1e-6) and torch.allclose(cov, torch.ones_like(cov))
    shift = torch.zeros(2, 2, 8, 10); shift[:, 0] = 1.0                # one pixel to the right
    out, cov = co.splat(x, shift, torch.zeros(2, 1, 8, 10))
    assert torch.allclose(out[..., 1:], x[..., :-1], atol=1e-6) and cov[..., 0].abs().max() == 0 and torch.allclose(cov[..., 1:], torch.ones(1))
    half = shift * 0.5                                                 # half a pixel: spread over two, the colours mixed
    out, cov = co.splat(x[:1], half[:1], torch.zeros(1, 1, 8, 10))
    assert torch.allclose(out[..., 1:-1], (x[:1, ..., :-2] + x[:1, ..., 1:-1]) / 2, atol=1e-6)
    two = torch.zeros(1, 2, 1, 2); two[0, 0, 0, 0] = 1.0               # pixel 0 lands on pixel 1, which stays: the larger metric wins
    img = torch.tensor([[[[0.0, 1.0]]]])
    front = co.splat(img, two, torch.tensor([[[[0.0, -20.0]]]]))[0]
    back = co.splat(img, two, torch.tensor([[[[-20.0, 0.0]]]]))[0]
    assert front[0, 0, 0, 1] < 1e-6 and back[0, 0, 0, 1] > 1 - 1e-6


def test_bad_counts_fail_with_one_line(tmp_path):
    for name, args, said in (('corr_oracle.py', ['--clips', '0'], '--clips must be >= 1'), ('corr_oracle.py', ['--fine-tune', '-1'], '--fine-tune must be >= 0'),
                             ('corr_oracle.py', ['--splat-only', '--fine-tune', '3'], '--splat-only fine-tunes nothing'),
                             ('global_match.py', ['--train-clips', '0'], '--train-clips must be >= 1'), ('hop.py', ['--threads', '0'], '--threads must be >= 1')):
        r = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert r.returncode == 2 and said in r.stderr.strip().splitlines()[-1], (name, args, r.stderr[-500:])


def test_write_atomic_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import common
    p = tmp_path / 'table.md'
    old = os.umask(0o022)                                                   # the table gets 0o666 less the umask, as write_text gives
    try: common.write_atomic(p, 'first ✓'); common.write_atomic(p, 'second ✓')
    finally: os.umask(old)
    assert p.read_text(encoding='utf-8') == 'second ✓' and [f.name for f in tmp_path.iterdir()] == ['table.md']
    assert p.stat().st_mode & 0o777 == 0o644
    monkeypatch.setattr(common.os, 'replace', lambda *a: (_ for _ in ()).throw(OSError('disk full')))
    try: common.write_atomic(p, 'third')
    except OSError as e: assert 'disk full' in str(e)
    else: raise AssertionError('a failed rename must raise')
    assert p.read_text(encoding='utf-8') == 'second ✓' and [f.name for f in tmp_path.iterdir()] == ['table.md']   # the old table stays whole, no leftover
    try: common.write_atomic(tmp_path / 'nowhere' / 't.md', 'x')
    except FileNotFoundError as e: assert str(e) == f"{tmp_path / 'nowhere' / 't.md'}: no such folder {tmp_path / 'nowhere'}"
    else: raise AssertionError('a missing folder must raise')


def test_ablation_summary_without_the_base_has_no_differences(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    from ablations import summarise, METRICS
    runs = pd.DataFrame([dict(variant=v, seed=s, paint=0.1, **{k: 1.0 + s + (v == 'b') for k in METRICS}) for v in ('a', 'b') for s in (0, 1, 2)])
    alone = summarise(runs[runs.variant == 'b'], base='a')                  # a call that named variants without the base
    gaps = summarise(runs.assign(paint=[None, None, 0.2, 0.1, None, None]), base='a')   # painted share known for 1 of 3 seeds, or none
    assert gaps.loc['a', 'painted'] == '0.2000 (1 of 3 seeds)' and gaps.loc['b', 'painted'] == '0.1000 (1 of 3 seeds)'
    assert not alone.filter(like='Δ').shape[1] and alone.loc['b', 'psnr'].startswith('3.')
    both = summarise(runs, base='a')
    assert both.loc['b', 'Δpsnr'].startswith('+1.0') and both.filter(like='Δ').shape[1] == len(METRICS)
    assert (both.loc['a'].filter(like='Δ') == '–').all()                 # the base: no difference from itself, not NaN
