"Whole clips (chapter 06a): holds on their own timeline, scene cuts, streaming output, interruptions, bad input."
import os, subprocess, sys

import numpy as np
import pytest
import torch
import imageio.v3 as iio

from stillframes.data import ToonClips, image_files, load_image
from stillframes.footage import CUT_THRESHOLD, FrameSource, histogram_distance, interpolate, output_time, segments, thumbnail
from stillframes.model import load_model
from stillframes.utils import to_uint8

INTERPOLATE = 'from stillframes.cli import interpolate_cli; import sys; interpolate_cli(sys.argv[1:])'


def run(*args):
    return subprocess.run([sys.executable, '-c', INTERPOLATE, *map(str, args)], capture_output=True, text=True)


def one_line_error(r, *words):
    lines = [l for l in r.stderr.strip().splitlines() if not l.startswith('usage:') and not l.startswith('  ')]
    assert r.returncode != 0 and len(lines) == 1, r.stderr
    for w in words: assert w in lines[0], (w, lines[0])


@pytest.fixture(scope='module')
def model(): return load_model(device='cpu')


N, CUT = 48, 24


@pytest.fixture(scope='module')
def spliced(tmp_path_factory):
    "A 48-frame ToonClips sequence, 72x128, on twos: shot 1 (12 drawings, frames 0-23), a cut, shot 2 (12 drawings, frames 24-47)."
    d = tmp_path_factory.mktemp('spliced')
    ds = ToonClips(2, frames=12, size=(72, 128), split='test')
    frames = [f for i in range(2) for f in to_uint8(ds[i][0]) for _ in range(2)]
    for k, f in enumerate(frames): iio.imwrite(d / f'frame{k}.png', f)
    return d, np.stack(frames)


@pytest.mark.parametrize('split, style', [('val', 'A'), ('val', 'B'), ('train', 'A'), ('train', 'B')])
def test_cut_threshold_separates_shots_from_motion(split, style):
    "Clips the chapter did not calibrate on: 60 shots with large motion, every consecutive pair within and across shots."
    ds = ToonClips(60, frames=9, size=(72, 128), split=split, style=style, motion=1.5)
    shots = [[thumbnail(f) for f in to_uint8(ds[i][0])] for i in range(60)]
    within = max(histogram_distance(s[k], s[k + 1]) for s in shots for k in range(8))
    across = min(histogram_distance(shots[i][-1], shots[i + 1][0]) for i in range(59))
    assert within < CUT_THRESHOLD < across, (within, across)


def test_doubling_a_clip_on_twos_with_a_cut(spliced, model, tmp_path):
    "Issue 11: the frame count, no output frame mixing the two shots, holds replaced by in-betweens on the drawings' timeline."
    d, frames = spliced
    st = interpolate(d, tmp_path / 'x2', model, factor=2, progress=False)
    out = np.stack([iio.imread(p) for p in image_files(tmp_path / 'x2')])
    assert out.shape == ((N - 1) * 2 + 1, 72, 128, 3) and st['frames_in'] == N
    assert st['cuts'] == 1 and st['drawings'] == N // 2
    # output frame k sits at tau = k / 2; drawing j of a shot first shows at input frame 2j and is held for one more frame
    for j in range(0, CUT - 2, 2):
        a, b = load_image(d / f'frame{j}.png'), load_image(d / f'frame{j + 2}.png')
        assert np.array_equal(out[2 * j], frames[j])                       # the drawing itself
        mids = to_uint8(model.animate(a, b, times=[0.25, 0.5, 0.75]))       # the held copy (tau = j + 1) is the in-between at t = 1/2
        for q in range(3): assert np.abs(out[2 * j + 1 + q].astype(int) - mids[q].astype(int)).max() <= 1, (j, q)
    # no frame mixes the shots: the last drawing of shot 1 (frames 22, 23) is repeated up to the cut, then shot 2 starts clean
    for k in range(2 * (CUT - 2), 2 * CUT): assert np.array_equal(out[k], frames[CUT - 2]), k
    assert np.array_equal(out[2 * CUT], frames[CUT])
    th = [thumbnail(f) for f in frames]
    for k, f in enumerate(out):
        own, other = (range(CUT), range(CUT, N)) if k < 2 * CUT else (range(CUT, N), range(CUT))
        near = lambda r: min(histogram_distance(thumbnail(f), th[i]) for i in r)
        assert near(own) < CUT_THRESHOLD < near(other), k


def test_keep_holds_interpolates_between_copies(spliced, model, tmp_path):
    d, frames = spliced
    segs = list(segments(FrameSource(d), output_time(2), keep_holds=True))
    assert len(segs) == N and segs[0].times == [0.0, 0.5]
    st = interpolate(d, tmp_path / 'kept', model, factor=2, keep_holds=True, progress=False)
    assert st['drawings'] == N and st['frames_out'] == (N - 1) * 2 + 1


def test_fps_conversion_and_video_round_trip_with_audio(spliced, model, tmp_path):
    d, _ = spliced
    import imageio_ffmpeg
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    silent = tmp_path / 'silent.mp4'
    interpolate(d, silent, model, factor=2, progress=False)
    src = tmp_path / 'in.mp4'
    r = subprocess.run([ff, '-y', '-loglevel', 'error', '-i', silent, '-f', 'lavfi', '-i', 'sine=frequency=440:duration=1',
                        '-c:v', 'copy', '-c:a', 'aac', '-shortest', src], capture_output=True)
    if r.returncode != 0: pytest.skip(f"this ffmpeg cannot make a test clip with sound: {r.stderr[-200:]}")
    assert FrameSource(src).audio and FrameSource(src).fps == 48
    st = interpolate(src, tmp_path / 'out.mp4', model, fps=60, progress=False)
    assert st['fps_out'] == 60 and FrameSource(tmp_path / 'out.mp4').audio
    n = sum(1 for _ in FrameSource(tmp_path / 'out.mp4'))
    assert n == st['frames_out']
    assert not [p for p in tmp_path.iterdir() if '.part' in p.name]


class Interrupt:
    "A model that raises KeyboardInterrupt on its `n`-th call, as Ctrl-C would."
    def __init__(self, model, n): self.model, self.n = model, n
    def parameters(self): return self.model.parameters()
    def animate(self, *a, **kw):
        self.n -= 1
        if self.n == 0: raise KeyboardInterrupt
        return self.model.animate(*a, **kw)


def test_an_interrupted_run_leaves_whole_frames_and_no_partial_video(spliced, model, tmp_path):
    d, _ = spliced
    with pytest.raises(KeyboardInterrupt): interpolate(d, tmp_path / 'part', Interrupt(model, 3), factor=2, batch=1, progress=False)
    files = sorted(p.name for p in (tmp_path / 'part').iterdir())
    assert files == [f'frame_{k:06d}.png' for k in range(len(files))] and 0 < len(files) < (N - 1) * 2 + 1
    for p in (tmp_path / 'part').iterdir(): assert iio.imread(p).shape == (72, 128, 3)
    with pytest.raises(KeyboardInterrupt): interpolate(d, tmp_path / 'part.mp4', Interrupt(model, 3), factor=2, batch=1, progress=False)
    assert list(tmp_path.glob('*.mp4')) == [] and list(tmp_path.glob('.*')) == []


def test_interpolate_cli_progress_and_summary(spliced, tmp_path):
    d, _ = spliced
    r = run(d, '--out', tmp_path / 'x3.gif', '--factor', '3')
    assert r.returncode == 0, r.stderr
    assert 'frame/s' in r.stderr and f'{(N - 1) * 3 + 1} frames at 72 fps from {N} frames at 24 fps' in r.stdout
    gif = iio.imread(tmp_path / 'x3.gif', index=None)      # GIF writers merge repeated frames into one
    assert gif.shape[1:] == (72, 128, 3) and (N - 1) * 3 + 1 - 8 == len(gif)   # 6 repeats before the cut, 4 at the end


def test_interpolate_bad_input(spliced, tmp_path):
    d, frames = spliced
    one = tmp_path / 'one'; one.mkdir(); iio.imwrite(one / 'a.png', frames[0])
    mixed = tmp_path / 'mixed'; mixed.mkdir(); iio.imwrite(mixed / 'a.png', frames[0]); iio.imwrite(mixed / 'b.png', frames[1][:64])
    empty = tmp_path / 'empty'; empty.mkdir()
    (tmp_path / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + os.urandom(2000))
    full = tmp_path / 'full'; full.mkdir(); (full / 'old.png').write_bytes(b'x')
    cases = [((tmp_path / 'broken.mp4', '--out', tmp_path / 'o', '--factor', '2'), ('broken.mp4', 'cannot decode')),
             ((one, '--out', tmp_path / 'o', '--factor', '2'), ('one', 'at least 2 frames')),
             ((empty, '--out', tmp_path / 'o', '--factor', '2'), ('empty', 'at least 2 frames')),
             ((mixed, '--out', tmp_path / 'o', '--factor', '2'), ('b.png', '128x64', 'one size')),
             ((tmp_path / 'nope', '--out', tmp_path / 'o', '--factor', '2'), ('nope', 'no such')),
             ((d, '--out', tmp_path / 'o', '--factor', '1'), ('--factor must be at least 2',)),
             ((d, '--out', tmp_path / 'o', '--factor', '0'), ('--factor must be at least 2',)),
             ((d, '--out', tmp_path / 'o', '--fps', '12'), ('not above the input', '24')),
             ((d, '--out', tmp_path / 'o', '--fps', '24'), ('not above the input',)),
             ((d, '--out', d, '--factor', '2'), ('would overwrite',)),
             ((d, '--out', full, '--factor', '2'), ('not empty',)),
             ((d, '--out', tmp_path / 'o.jpg', '--factor', '2'), ("unknown output type '.jpg'",)),
             ((d, '--out', tmp_path / 'missing' / 'o.mp4', '--factor', '2'), ('no such folder',)),
             ((d, '--out', tmp_path / 'o', '--factor', '2', '--fps', '60'), ('not allowed with argument',)),
             ((d, '--out', tmp_path / 'o'), ('one of the arguments --factor --fps is required',))]
    for args, words in cases: one_line_error(run(*args), *words)
    assert not (tmp_path / 'o').exists() and sorted(p.name for p in full.iterdir()) == ['old.png']


def test_clip_triplets_skip_holds_and_cuts(spliced):
    from stillframes.footage import ClipTriplets
    d, _ = spliced
    tr = ClipTriplets(d, size=48, gaps=2)
    assert len(tr.frames) == 24 and tr.shots == [0] * 12 + [1] * 12           # 24 drawings in 2 shots, holds skipped
    assert len(tr.triplets) == 2 * 10 + 2 * 8 and (0, 2, 4) in tr.triplets and (10, 11, 12) not in tr.triplets
    clip, _ = tr[0]
    assert clip.shape == (3, 3, 48, 48) and clip.min() >= -1 and clip.max() <= 1


def test_fine_tune_the_shipped_model_on_a_clip(spliced, tmp_path, monkeypatch):
    "stillframes-train --data CLIP --init shipped: triplets of the clip, FreezeD, a model file animate takes with --model."
    from stillframes.cli import train_cli
    from stillframes.train import Trainer, finetune_config
    from stillframes.model import model_asset
    from stillframes.cli import animate_cli
    monkeypatch.setenv('STILLFRAMES_CACHE', str(tmp_path / 'cache'))
    d, _ = spliced
    cfg = finetune_config(str(d), steps=2, overrides=['optim.batch_size=2'])
    assert cfg.frames == 3 and cfg.discriminator.finetune_last == 2 and not cfg.motion.freeze and cfg.loss.seq_adv == 0
    tr = Trainer(cfg, device='cpu').init_from(model_asset())
    shipped_d = torch.load(model_asset().with_name('small_d.pt'), map_location='cpu', weights_only=False)['D_img']
    name = next(k for k in shipped_d if 'weight' in k)
    assert torch.equal(tr.D_img.state_dict()[name], shipped_d[name].float())  # the shipped D, not a fresh one
    frozen = [n for n, p in tr.D_img.named_parameters() if not p.requires_grad]
    assert frozen and len(frozen) < len(list(tr.D_img.parameters()))          # FreezeD: early stages only
    out = train_cli(['--data', str(d), '--init', 'shipped', '--steps', '2', '--set', 'optim.batch_size=2', '--out', str(tmp_path / 'run'),
                     '--export', str(tmp_path / 'mine.pt'), '--no-progress'])
    assert torch.load(out, map_location='cpu', weights_only=False)['step'] == 2
    animate_cli([str(d / 'frame0.png'), str(d / 'frame2.png'), '--model', str(tmp_path / 'mine.pt'), '--frames', '3', '--out', str(tmp_path / 'f')])
    assert len(image_files(tmp_path / 'f')) == 3
    with pytest.raises(SystemExit):
        train_cli(['--init', 'shipped', '--out', str(tmp_path / 'run2')])         # a model file needs --data CLIP


def test_a_long_hold_is_a_pause(spliced, model, tmp_path):
    "A drawing held for 8 frames is repeated; the move to the next drawing takes its last MAX_HOLD = 3 frames."
    from stillframes.footage import MAX_HOLD
    d, frames = spliced
    p = tmp_path / 'pause'; p.mkdir()
    seq = [frames[0]] * 8 + [frames[2]] * 2
    for k, f in enumerate(seq): iio.imwrite(p / f'{k}.png', f)
    interpolate(p, tmp_path / 'o', model, factor=2, progress=False)
    out = [iio.imread(f) for f in image_files(tmp_path / 'o')]
    moving = 2 * (8 - MAX_HOLD)
    for k in range(moving + 1): assert np.array_equal(out[k], frames[0]), k
    assert not np.array_equal(out[moving + 1], frames[0]) and np.array_equal(out[16], frames[2])


def test_odd_sized_video_and_fps_times(tmp_path, model):
    from stillframes.footage import output_time
    tau = output_time(None, 25, 48)
    assert tau(240) == 125 and isinstance(tau(240), int)
    src = tmp_path / 'odd'; src.mkdir()
    clip = to_uint8(ToonClips(1, frames=3, size=(71, 125), split='test')[0][0])
    for k, f in enumerate(clip): iio.imwrite(src / f'{k}.png', f)
    st = interpolate(src, tmp_path / 'odd.mp4', model, factor=2, progress=False)
    assert st['frames_out'] == 5 and iio.imread(tmp_path / 'odd.mp4', index=None).shape == (5, 71, 125, 3)
    assert oct((tmp_path / 'odd.mp4').stat().st_mode & 0o777) != oct(0o600)
