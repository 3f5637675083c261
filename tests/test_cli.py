"Console scripts for your own frames: stillframes-animate and stillframes-interpolate (chapters 06a, 09)."
import os, subprocess, sys

import numpy as np
import pytest
import imageio.v3 as iio

from stillframes.cli import animate_cli
from stillframes.data import ToonClips, image_files, load_image
from stillframes.eval import psnr
from stillframes.utils import to_uint8

ANIMATE = 'from stillframes.cli import animate_cli; import sys; animate_cli(sys.argv[1:])'
INTERPOLATE = 'from stillframes.cli import interpolate_cli; import sys; interpolate_cli(sys.argv[1:])'


def run(code, *args):
    return subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True)


def one_line_error(r, *words):
    "Exit status 1 and one line on stderr (after argparse's usage line, if any) that names the problem."
    lines = [l for l in r.stderr.strip().splitlines() if not l.startswith('usage:') and not l.startswith('  ')]
    assert r.returncode != 0 and len(lines) == 1, r.stderr
    for w in words: assert w in lines[0], (w, lines[0])


@pytest.fixture(scope='module')
def pair576(tmp_path_factory):
    d = tmp_path_factory.mktemp('pair576')
    clip = ToonClips(1, frames=3, size=(320, 576), split='test')[0][0]
    iio.imwrite(d / 'A.png', to_uint8(clip[0])); iio.imwrite(d / 'B.png', to_uint8(clip[2]))
    return d, clip


def test_animate_576x320_keeps_size_and_matches_the_api(pair576, tmp_path):
    d, clip = pair576
    r = run(ANIMATE, d / 'A.png', d / 'B.png', '--frames', '3', '--out', tmp_path / 'frames')
    assert r.returncode == 0, r.stderr
    frames = [load_image(p) for p in image_files(tmp_path / 'frames')]
    assert [f.shape for f in frames] == [(3, 320, 576)] * 3
    from stillframes.model import load_model
    api = load_model(device='cpu').animate(load_image(d / 'A.png'), load_image(d / 'B.png'), 3)[1]
    assert (frames[1] - api).abs().max() <= 1 / 127.5 + 1e-6        # the same frame, up to 8-bit rounding


def test_shipped_model_beats_the_crossfade_at_576x320():
    "Issue 11's criterion, on 8 held-out ToonClips pairs rendered at 576x320: the middle frame's mean PSNR."
    from stillframes.model import load_model
    model = load_model(device='cpu')
    ds = ToonClips(8, frames=3, size=(320, 576), split='test')
    ours, fade = [], []
    for i in range(len(ds)):
        c = ds[i][0]
        mid = model.animate(c[0], c[2], 3)[1]
        assert mid.shape == (3, 320, 576)
        ours.append(float(psnr(mid[None], c[1][None]))); fade.append(float(psnr(((c[0] + c[2]) / 2)[None], c[1][None])))
    assert np.mean(ours) >= np.mean(fade), (ours, fade)


@pytest.mark.parametrize('out, check', [('clip.gif', lambda p: iio.imread(p, index=None).shape == (4, 320, 576, 3)),
                                        ('strip.png', lambda p: iio.imread(p).shape == (320, 4 * 576 + 3, 3)),
                                        ('clip.mp4', lambda p: iio.imread(p, index=None).shape[1:] == (320, 576, 3)),
                                        ('folder', lambda p: len(image_files(p)) == 4)])
def test_animate_output_kinds(pair576, tmp_path, out, check):
    d, _ = pair576
    path = animate_cli([str(d / 'A.png'), str(d / 'B.png'), '--frames', '4', '--out', str(tmp_path / out)])
    assert check(path)
    assert not [p for p in tmp_path.rglob('*') if '.part' in p.name]          # no temporary files left


def test_animate_times_sizes_and_notes(pair576, tmp_path, capsys):
    d, clip = pair576
    iio.imwrite(tmp_path / 'B_small.png', to_uint8(clip[2])[::2, ::2])
    animate_cli([str(d / 'A.png'), str(tmp_path / 'B_small.png'), '--times', '0.25,0.5,0.75', '--out', str(tmp_path / 'mid'), '--upscale'])
    err = capsys.readouterr().err
    assert err.count('resized the second to the first') == 1 and err.count('--upscale is no longer needed') == 1
    assert [load_image(p).shape for p in image_files(tmp_path / 'mid')] == [(3, 320, 576)] * 3


def test_animate_bad_input(pair576, tmp_path):
    d, _ = pair576
    a, b = d / 'A.png', d / 'B.png'
    (tmp_path / 'trunc.png').write_bytes(a.read_bytes()[:300])
    (tmp_path / 'text.png').write_text('not an image')
    ro = tmp_path / 'ro'; ro.mkdir(); ro.chmod(0o555)
    cases = [((a, tmp_path / 'nope.png', '--out', tmp_path / 'x.gif'), ('nope.png', 'no such file')),
             ((a, tmp_path / 'trunc.png', '--out', tmp_path / 'x.gif'), ('trunc.png',)),
             ((a, tmp_path / 'text.png', '--out', tmp_path / 'x.gif'), ('text.png', 'not an image')),
             ((a, b, '--frames', '0', '--out', tmp_path / 'x.gif'), ('--frames must be in 2..1000',)),
             ((a, b, '--frames', '100000', '--out', tmp_path / 'x.gif'), ('--frames must be in 2..1000',)),
             ((a, b, '--times', '0.5,1.5', '--out', tmp_path / 'x.gif'), ('--times must lie in [0, 1]',)),
             ((a, b, '--out', tmp_path / 'x.jpg'), ("unknown output type '.jpg'",)),
             ((a, b, '--out', tmp_path / 'missing' / 'x.gif'), ('missing', 'no such folder')),
             ((a, b, '--model', a, '--out', tmp_path / 'x.gif'), ('A.png', 'not a stillframes model file')),
             ((a, b, '--out', a), ('would overwrite a keyframe',)),
             ((a, b, '--bogus'), ('unrecognized arguments: --bogus',))]
    if os.geteuid() != 0: cases.append(((a, b, '--out', ro / 'x.gif'), ('ro', 'not writable')))
    for args, words in cases:
        one_line_error(run(ANIMATE, *args), *words)
    assert not (tmp_path / 'x.gif').exists() and not (tmp_path / 'x.jpg').exists()
    assert a.stat().st_size > 1000                                            # the keyframe was not overwritten
def test_animate_example_uses_the_shipped_model(tmp_path):
    from stillframes.cli import animate_cli
    from stillframes.train import asset_path, load_model
    import imageio.v3 as iio
    assert asset_path().exists() and asset_path().stat().st_size < 8e6
    model = load_model(asset_path(), 'cpu')
    assert model.train_config.encoder.backbone == 'conv' and model.refiner is not None
    out = animate_cli(['--example', str(tmp_path / 'ex.gif'), '--frames', '6', '--device', 'cpu'])
    assert iio.imread(out, index=None).shape == (6, 64, 64, 3)


def test_animate_cli_any_size_upscale_and_errors(tmp_path):
    from stillframes.cli import animate_cli
    from stillframes.train import Trainer, TrainConfig, clip_dataset, export_model
    cfg = TrainConfig.tiny(size=32, **{'data.n_clips': 4, 'data.cache': False, 'optim.batch_size': 2, 'log.sample_every': 0})
    ds = clip_dataset(cfg)
    from stillframes.utils import to_uint8
    import imageio.v3 as iio
    tr = Trainer(cfg, tmp_path / 'run', 'cpu')
    tr.fit(1, data=ds, progress=False)
    model = export_model(tmp_path / 'run' / 'checkpoint.pt', tmp_path / 'm.pt')
    grey = (to_uint8(ds[0][0][0]).mean(-1)).astype('uint8').repeat(3, 0).repeat(2, 1)   # 96 x 64, greyscale
    iio.imwrite(tmp_path / 'a.png', grey)
    rgba = to_uint8(ds[0][0][-1])
    iio.imwrite(tmp_path / 'b.png', __import__('numpy').concatenate([rgba, rgba[..., :1] * 0 + 255], -1))
    strip = animate_cli([str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), '--model', str(model), '--frames', '5', '--out', str(tmp_path / 's.png'), '--upscale'])
    assert iio.imread(strip).shape == (96, 5 * 64 + 4, 3)
    import importlib.util
    if importlib.util.find_spec('imageio_ffmpeg'):
        mp4 = animate_cli([str(model), str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), '--frames', '4', '--out', str(tmp_path / 'v.mp4')])
        assert mp4.stat().st_size > 0
    code = 'from stillframes.cli import animate_cli; import sys; animate_cli(sys.argv[1:])'
    for args, msg in [([str(model), str(tmp_path / 'a.png'), str(tmp_path / 'nope.png'), '--out', str(tmp_path / 'x.gif')], 'nope.png'),
                      ([str(model), str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), '--out', str(tmp_path / 'x.gif'), '--path', 'motion'], 'no learned path'),
                      ([str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), '--model', str(tmp_path / 'a.png'), '--out', str(tmp_path / 'x.gif')], 'not a stillframes model file')]:
        r = subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True)
        assert r.returncode == 1 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


