"""The bad-input catalogue: every console script and the Python API, fed the files and values users feed them.

Each case is one row of `CASES`: the script, its arguments (`{name}` stands for a file of the `files` fixture, `{out}` for
a fresh output path), and words the error must contain. Every refusal must give exactly one `prog: error: ...` line on
stderr (argparse's usage line may come before it) naming the problem and the file, a non-zero exit status, and no
partial output. Odd but usable images (greyscale, RGBA, palette, 16-bit) must be converted, not refused.
"""
import hashlib, os, shutil, struct, subprocess, zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stillframes.cli import animate_cli, interpolate_cli
from stillframes.data import ImageError, load_image, FrameFolder
from stillframes.eval import eval_cli
from stillframes.model import load_model
from stillframes.motion import train_flow_cli
from stillframes.cli import train_cli, demo_cli
from stillframes.train import TrainConfig, Trainer, example_keyframes
from stillframes.utils import to_uint8

SCRIPTS = {'animate': animate_cli, 'interpolate': interpolate_cli, 'train': train_cli, 'eval': eval_cli,
           'demo': demo_cli, 'flow': train_flow_cli}
TRAIN = ['--steps', '2', '--no-progress', '--set', 'optim.batch_size=2', 'data.n_clips=4', 'log.sample_every=0', 'log.every=1']


def png_header_only(path, w, h, rows=1):
    "A valid PNG of `w`x`h` black greyscale pixels, written a row at a time (a 20000x20000 file costs 400 KB, not 400 MB)."
    def chunk(kind, data): return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    z, row, parts = zlib.compressobj(9), b'\0' * (w + 1), []
    for _ in range(h): parts.append(z.compress(row))
    parts.append(z.flush())
    Path(path).write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
                           + chunk(b'IDAT', b''.join(parts)) + chunk(b'IEND', b''))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('inputs')
    fa, fb = example_keyframes(64)
    a, b = to_uint8(fa), to_uint8(fb)
    Image.fromarray(a).save(d / 'a.png'); Image.fromarray(b).save(d / 'b.png')
    Image.fromarray(b).resize((96, 80)).save(d / 'b_96x80.png')
    Image.fromarray(a).convert('L').save(d / 'grey.png')
    Image.fromarray(np.dstack([b, np.full(b.shape[:2], 200, np.uint8)])).save(d / 'rgba.png')
    Image.fromarray(a).convert('P', palette=Image.Palette.ADAPTIVE, colors=32).save(d / 'palette.png')
    Image.fromarray(np.asarray(Image.open(d / 'grey.png')).astype(np.uint16) * 257).save(d / 'grey16.png')   # PIL writes mode I;16
    (d / 'truncated.png').write_bytes((d / 'a.png').read_bytes()[:300])
    (d / 'notimage.png').write_text('these are notes, not a picture\n')
    Image.new('RGB', (1, 1)).save(d / 'one_pixel.png')
    png_header_only(d / 'huge.png', 20000, 20000)
    (d / 'empty').mkdir()
    (d / 'one_frame').mkdir(); shutil.copy(d / 'a.png', d / 'one_frame' / '0001.png')
    (d / 'two_frames').mkdir()
    for i, f in enumerate('ab'): shutil.copy(d / f'{f}.png', d / 'two_frames' / f'{i:04d}.png')
    (d / 'mixed').mkdir(); shutil.copy(d / 'a.png', d / 'mixed' / '0001.png'); shutil.copy(d / 'b_96x80.png', d / 'mixed' / '0002.png')
    (d / 'notckpt.pt').write_text('not a checkpoint')
    torch.save({'format': 'stillframes-model-1', 'config': {'size': 64}, 'ema': {}}, d / 'old_model.pt')
    # training run folders, each holding one kind of checkpoint for --resume
    for name, obj in (('run_other_preset', None), ('run_not_ckpt', b'not a checkpoint'), ('run_old', 'old')):
        (d / name).mkdir()
        ck = d / name / 'checkpoint.pt'
        if obj is None: Trainer(TrainConfig.small(), device='cpu').save(ck)
        elif obj == 'old': torch.save({'format': 'stillframes-train-1', 'config': {'size': 64}, 'step': 10}, ck)
        else: ck.write_bytes(obj)
    return d


def run(script, argv, capsys):
    "Run console script `script` in-process: (exit status, stderr lines, stdout)."
    capsys.readouterr()
    said = ''
    try: SCRIPTS[script](argv); code = 0
    except SystemExit as e:   # as the interpreter does on exit: a string is printed to stderr, status 1
        if isinstance(e.code, str): code, said = 1, e.code + '\n'
        else: code = e.code or 0
    out, err = capsys.readouterr()
    return code, [l for l in (err + said).splitlines() if l.strip()], out


def error_lines(lines):
    "The lines of a refusal without argparse's usage lines (`usage: ...` and its indented continuation lines)."
    return [l for l in lines if not l.startswith('usage:') and not l.startswith(' ')]


# (id, script, argv, words the one error line must contain). `{x}` is files / 'x', `{out}` a fresh output path.
CASES = [
    # stillframes-animate
    ('animate: missing keyframe', 'animate', ['{a}', '{missing.png}', '--out', '{out}.gif'], ['missing.png', 'no such file']),
    ('animate: truncated PNG', 'animate', ['{a}', '{truncated.png}', '--out', '{out}.gif'], ['truncated.png', 'cannot read image']),
    ('animate: text file named .png', 'animate', ['{notimage.png}', '{b}', '--out', '{out}.gif'], ['notimage.png', 'not an image']),
    ('animate: 1x1 image', 'animate', ['{one_pixel.png}', '{b}', '--out', '{out}.gif'], ['one_pixel.png', '1x1', 'smaller than 32']),
    ('animate: 20000x20000 image', 'animate', ['{a}', '{huge.png}', '--out', '{out}.gif'], ['huge.png', '400,000,000 pixels', 'more than 67,108,864', 'shrink']),
    ('animate: --frames 0', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--frames', '0'], ['--frames', '2..1000', 'got 0']),
    ('animate: --frames 100000', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--frames', '100000'], ['--frames', 'got 100000']),
    ('animate: --times 1.5', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--times', '0.5,1.5'], ['--times', '[0, 1]', '1.5']),
    ('animate: unknown option', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--colour', 'red'], ['unrecognized arguments', '--colour']),
    ('animate: non-numeric --frames', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--frames', 'ten'], ['--frames', "invalid int value: 'ten'"]),
    ('animate: output in a missing folder', 'animate', ['{a}', '{b}', '--out', '{nowhere}/x.gif'], ['nowhere', 'no such folder']),
    ('animate: unknown output kind', 'animate', ['{a}', '{b}', '--out', '{out}.jpg'], ['.jpg']),
    ('animate: output overwrites a keyframe', 'animate', ['{a}', '{b}', '--out', '{b}'], ['b.png', 'overwrite a keyframe']),
    ('animate: not a model file', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--model', '{notckpt.pt}'], ['notckpt.pt', 'not a']),
    ('animate: model of the old 64-px model', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--model', '{old_model.pt}'], ['old_model.pt', 'old 64-px model']),
    ('animate: unknown --device', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--device', 'tpu'], ['--device', 'cpu or cuda', "'tpu'"]),
    ('animate: missing model file', 'animate', ['{a}', '{b}', '--out', '{out}.gif', '--model', '{missing.pt}'], ['missing.pt']),
    # stillframes-interpolate
    ('interpolate: missing input', 'interpolate', ['{missing}', '--out', '{out}', '--factor', '2'], ['missing', 'no such']),
    ('interpolate: empty folder', 'interpolate', ['{empty}', '--out', '{out}', '--factor', '2'], ['empty', '0 image files']),
    ('interpolate: a folder with one frame', 'interpolate', ['{one_frame}', '--out', '{out}', '--factor', '2'], ['one_frame', '1 image file', 'at least 2']),
    ('interpolate: frames of mixed sizes', 'interpolate', ['{mixed}', '--out', '{out}', '--factor', '2'], ['0002.png', '96x80', '64x64']),
    ('interpolate: --factor 0', 'interpolate', ['{two_frames}', '--out', '{out}', '--factor', '0'], ['--factor', 'got 0']),
    ('interpolate: --factor with --fps', 'interpolate', ['{two_frames}', '--out', '{out}', '--factor', '2', '--fps', '48'], ['not allowed with']),
    ('interpolate: --fps below the input', 'interpolate', ['{two_frames}', '--out', '{out}', '--fps', '12'], ['--fps 12', 'not above']),
    ('interpolate: unknown --device', 'interpolate', ['{two_frames}', '--out', '{out}', '--factor', '2', '--device', 'tpu'], ['--device', 'cpu or cuda', "'tpu'"]),
    ('interpolate: output in a missing folder', 'interpolate', ['{two_frames}', '--out', '{nowhere}/x.mp4', '--factor', '2'], ['nowhere', 'no such folder']),
    ('interpolate: not a model file', 'interpolate', ['{two_frames}', '--out', '{out}', '--factor', '2', '--model', '{notckpt.pt}'], ['notckpt.pt', 'not a']),
    # stillframes-train
    ('train: missing data folder', 'train', ['--data', '{missing}', '--out', '{out}', *TRAIN], ['missing', 'no such']),
    ('train: empty data folder', 'train', ['--data', '{empty}', '--out', '{out}', *TRAIN], ['empty', 'no image files']),
    ('train: fewer frames than a clip needs', 'train', ['--data', '{two_frames}', '--out', '{out}', *TRAIN], ['two_frames', '2 distinct frames', 'fewer than frames=8']),
    ('train: a checkpoint of another preset', 'train', ['--out', '{run_other_preset}', '--resume', *TRAIN], ['run_other_preset', 'another config']),
    ('train: a file that is not a checkpoint', 'train', ['--out', '{run_not_ckpt}', '--resume', *TRAIN], ['run_not_ckpt', 'cannot read checkpoint']),
    ('train: a checkpoint of the old 64-px model', 'train', ['--out', '{run_old}', '--resume', *TRAIN], ['run_old', 'old 64-px model']),
    ('train: --init with a non-checkpoint', 'train', ['--out', '{out}', '--init', '{notckpt.pt}', *TRAIN], ['notckpt.pt', 'cannot read checkpoint']),
    ('train: unknown preset', 'train', ['--out', '{out}', '--preset', 'huge'], ['--preset', "invalid choice: 'huge'"]),
    ('train: unknown config field', 'train', ['--out', '{out}', '--set', 'optim.speed=2'], ['optim.speed']),
    ('train: --steps 0', 'train', ['--out', '{out}', '--steps', '0'], ['--steps', 'got 0']),
    ('train: --minutes -1', 'train', ['--out', '{out}', '--minutes', '-1'], ['--minutes', 'got -1']),
    ('train: unknown --device', 'train', ['--out', '{out}', '--device', 'tpu', *TRAIN], ['--device', 'cpu or cuda', "'tpu'"]),
    ('train: a run folder that holds a checkpoint', 'train', ['--out', '{run_other_preset}', *TRAIN], ['run_other_preset', 'already holds a checkpoint', '--resume']),
    # stillframes-eval, -demo, -flow
    ('eval: not a checkpoint', 'eval', ['{notckpt.pt}', '--out', '{out}'], ['notckpt.pt', 'not a']),
    ('eval: old 64-px model', 'eval', ['{old_model.pt}', '--out', '{out}'], ['old_model.pt', 'old 64-px model']),
    ('eval: empty data folder', 'eval', ['--baselines', '--data', '{empty}', '--out', '{out}'], ['empty', 'no image']),
    ('eval: --frames 0', 'eval', ['--baselines', '--frames', '0', '--out', '{out}'], ['--frames', 'got 0']),
    ('demo: --minutes 0', 'demo', ['--out', '{out}', '--minutes', '0'], ['--minutes', 'got 0']),
    ('demo: unknown --device', 'demo', ['--out', '{out}', '--device', 'tpu'], ['--device', 'cpu or cuda', "'tpu'"]),
    ('demo: --eval-clips 0', 'demo', ['--out', '{out}', '--eval-clips', '0'], ['--eval-clips', 'got 0']),
    ('flow: --steps 0', 'flow', ['--out', '{out}', '--steps', '0'], ['--steps']),
    ('flow: resume without a checkpoint', 'flow', ['--out', '{out}', '--resume'], ['checkpoint.pt', 'no checkpoint']),
]


def fill(argv, files, out):
    res = []
    for x in argv:
        while '{' in x:
            i, j = x.index('{'), x.index('}')
            key = x[i + 1:j]
            v = str(out) if key == 'out' else str(files / (key if key not in ('a', 'b') else key + '.png'))
            x = x[:i] + v + x[j + 1:]
        res.append(x)
    return res


def snapshot(d:Path) -> dict:
    "Every file under `d` with its content hash."
    return {p.relative_to(d): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob('*')) if p.is_file()}


@pytest.mark.parametrize('name,script,argv,words', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line(name, script, argv, words, files, tmp_path, capsys):
    out = tmp_path / 'out'
    before = snapshot(files)
    code, lines, _ = run(script, fill(argv, files, out), capsys)
    prog = f'stillframes-{script}'
    errs = error_lines(lines)
    assert code not in (0, None), f"{name}: exit status {code}, stderr {lines}"
    assert len(errs) == 1, f"{name}: expected one error line, got {lines}"
    assert errs[0].startswith(f'{prog}: error: '), errs[0]
    for w in words: assert w.lower() in errs[0].lower(), f"{name}: {w!r} not in {errs[0]!r}"
    assert snapshot(files) == before, f"{name}: an input file or checkpoint was changed"
    left = [p for p in tmp_path.rglob('*') if p.is_file()]
    assert not left, f"{name}: left {left}"
    print(f"{name}: {errs[0]}")


@pytest.mark.parametrize('name', ['grey.png', 'rgba.png', 'palette.png', 'grey16.png'])
def test_odd_images_are_converted_not_refused(name, files, tmp_path, capsys):
    x = load_image(files / name)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    ref = load_image(files / ('b.png' if name == 'rgba.png' else 'a.png'))
    if name in ('grey.png', 'grey16.png'):   # the three channels equal the image's luma
        assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
        luma = (0.299 * ref[0] + 0.587 * ref[1] + 0.114 * ref[2])
        assert (x[0] - luma).abs().mean() < 0.02
    elif name == 'rgba.png':                 # alpha 200/255 over white
        assert (x - (ref * 200 / 255 + (1 - 200 / 255))).abs().max() < 0.02
    else: assert (x - ref).abs().mean() < 0.05   # 32 colours
    code, lines, out = run('animate', [str(files / name), str(files / 'b.png'), '--out', str(tmp_path / 'o.png'), '--frames', '4'], capsys)
    assert code == 0 and not lines, lines
    assert 'wrote' in out and '4 frames, 64x64' in out


def test_keyframes_of_different_sizes_are_drawn_at_the_first_size(files, tmp_path, capsys):
    code, lines, out = run('animate', [str(files / 'a.png'), str(files / 'b_96x80.png'), '--out', str(tmp_path / 'o'), '--frames', '3'], capsys)
    assert code == 0 and '3 frames, 64x64' in out
    assert len(lines) == 1 and 'b_96x80.png is 96x80' in lines[0] and 'resized the second to the first' in lines[0], lines
    assert len(list((tmp_path / 'o').glob('*.png'))) == 3


def test_api_raises_documented_exceptions(files):
    with pytest.raises(FileNotFoundError, match='missing.png: no such file'): load_image(files / 'missing.png')
    for name, words in (('truncated.png', 'cannot read image'), ('notimage.png', 'not an image'), ('one_pixel.png', 'smaller than 32'),
                        ('huge.png', 'shrink it first')):
        with pytest.raises(ImageError, match=words): load_image(files / name)
    assert issubclass(ImageError, ValueError)
    with pytest.raises(FileNotFoundError): load_model(files / 'missing.pt')
    with pytest.raises(ValueError, match='not a stillframes model file'): load_model(files / 'notckpt.pt')
    with pytest.raises(ValueError, match='old 64-px model'): load_model(files / 'old_model.pt')
    with pytest.raises(ValueError, match='no image files'): FrameFolder(files / 'empty', 8)
    with pytest.raises(ValueError, match='fewer than frames=8'): FrameFolder(files / 'two_frames', 8)
    model, a = load_model(), load_image(files / 'a.png')
    for kw, words in (({'frame_b': a[:, :, :40]}, 'frame_b: expected shape'), ({'frame_b': a[0]}, 'frame_b: expected shape'),
                      ({'n': 1}, 'at least 2'), ({'frame_b': a * float('nan')}, 'NaN or inf'),
                      ({'frame_b': (a + 1) * 127.5}, r'values up to 2\d\d; keyframes are in \[-1, 1\]')):
        args = {'frame_a': a, 'frame_b': a, 'n': 4, **kw}
        with pytest.raises(ValueError, match=words): model.animate(**args)


@pytest.fixture
def read_only_dir(tmp_path):
    "An empty folder nobody can write into: a read-only tmpfs mount when this is root (root writes into 0555 folders), else chmod 555."
    d = tmp_path / 'ro'; d.mkdir()
    if os.geteuid() == 0:
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', str(d)], capture_output=True, text=True)
        if r.returncode: pytest.skip(f"running as root and cannot mount a read-only tmpfs: {r.stderr.strip()}")
        yield d
        subprocess.run(['umount', str(d)])
    else:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)


@pytest.mark.parametrize('script', ['animate', 'interpolate', 'train'])
def test_output_in_a_read_only_folder(script, files, read_only_dir, capsys):
    ro = read_only_dir
    argv = {'animate': [str(files / 'a.png'), str(files / 'b.png'), '--out', str(ro / 'o.gif')],
            'interpolate': [str(files / 'two_frames'), '--out', str(ro / 'o.mp4'), '--factor', '2'],
            'train': ['--out', str(ro / 'run'), *TRAIN]}[script]
    code, lines, _ = run(script, argv, capsys)
    errs = error_lines(lines)
    assert code == 1 and len(errs) == 1, lines
    assert errs[0].startswith(f'stillframes-{script}: error: ') and str(ro) in errs[0], errs
    assert any(w in errs[0] for w in ('not writable', 'Read-only file system', 'Permission denied')), errs
    assert list(ro.iterdir()) == []
