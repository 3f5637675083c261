"Fast checks of `stillframes.data`: ToonClips ground truth and the loaders' handling of odd and bad files."
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stillframes.data import (ImageError, FrameFolder, STYLES, SHAPES, SCENERIES, ToonClips, Triplets, load_image,
                              read_video)
from stillframes.utils import save_gif, to_uint8


def test_toonclips_deterministic():
    a, b = ToonClips(3, seed=4), ToonClips(10, seed=4)
    (ca, aa), (cb, ab) = a[2], b[2]
    assert torch.equal(ca, cb)
    assert all(torch.equal(aa[k], ab[k]) for k in aa)
    assert not torch.equal(ca, ToonClips(3, seed=5)[2][0])


def test_splits_disjoint():
    sets = [{repr(ToonClips(60, split=s).scene(i)) for i in range(60)} for s in ('train', 'val', 'test')]
    assert all(len(s) == 60 for s in sets)
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    frames = [ToonClips(4, split=s, size=32, frames=2)[i][0][0] for s in ('train', 'val', 'test') for i in range(4)]
    assert len({f.numpy().tobytes() for f in frames}) == len(frames)


def test_frames_equal_render():
    ds = ToonClips(2, frames=5, size=48, motion=1.2)
    clip, _ = ds[1]
    for k in range(5): assert torch.equal(clip[k], ds.render(1, k / 4))
    assert torch.equal(clip[0], ds.render(1, 0)) and torch.equal(clip[-1], ds.render(1, 1))


@pytest.mark.parametrize('size', [32, 64, 128, 256])
def test_sizes_and_range(size):
    clip, attrs = ToonClips(1, frames=2, size=size)[0]
    assert clip.shape == (2, 3, size, size) and clip.dtype == torch.float32
    assert clip.min() >= -1 and clip.max() <= 1 and clip.std() > 0.05
    assert attrs['pos'].shape == (2, 3, 2)


@pytest.mark.parametrize('bad', [dict(size=16), dict(size=31), dict(size=4096), dict(size=(16, 64)), dict(size="64"), dict(split='dev'),
                                 dict(style='Z'), dict(frames=1), dict(motion=-0.1), dict(seed=-1)])
def test_toonclips_bad_args(bad):
    with pytest.raises(ValueError): ToonClips(2, **bad)


def test_attrs_and_collate():
    ds = ToonClips(6, frames=4, size=32, style='B')
    for i in range(6):
        a = ds[i][1]
        n = int(a['n_chars'])
        assert 1 <= n <= 3 and a['shape'].dtype == torch.long and a['shape'].shape == (3,)
        assert (a['shape'][:n] >= 0).all() and (a['shape'][:n] < len(SHAPES)).all() and (a['shape'][n:] == -1).all()
        assert a['colour'].shape == (3, 3) and (a['colour'][n:] == 0).all() and (a['colour'][:n] > 0).any()
        assert 0 <= int(a['scenery']) < len(SCENERIES) and int(a['style']) == list(STYLES).index('B')
    clips, attrs = next(iter(DataLoader(ds, batch_size=3)))
    assert clips.shape == (3, 4, 3, 32, 32) and attrs['shape'].shape == (3, 3) and attrs['n_chars'].shape == (3,)


def test_styles_differ():
    a, b = ToonClips(2, style='A')[1][0], ToonClips(2, style='B')[1][0]
    assert (a - b).abs().mean() > 0.05


def test_motion_scales_movement():
    def move(m):
        ds = ToonClips(10, motion=m, size=32, frames=4)
        return np.mean([(c[1:] - c[:-1]).abs().mean().item() for c, _ in (ds[i] for i in range(10))])
    assert move(0.2) < move(1.5)
    still = ToonClips(1, motion=0.0, size=32, frames=3)[0][0]
    assert torch.equal(still[0], still[1]) and torch.equal(still[1], still[2])


def _rgb(h=48, w=48):
    return to_uint8(ToonClips(1, size=64, frames=2)[0][0][0])[:h, :w]


def test_load_image_converts_modes(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).convert('L').save(tmp_path / 'grey.png')
    Image.fromarray(rgb).convert('LA').save(tmp_path / 'la.png')
    alpha = np.zeros((48, 48), np.uint8); alpha[:, :24] = 255
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / 'rgba.png')
    Image.fromarray(np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)).save(tmp_path / 'grey16.png')
    Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE).save(tmp_path / 'pal.png')
    Image.fromarray(rgb).convert('CMYK').save(tmp_path / 'cmyk.jpg')
    Image.fromarray(rgb).save(tmp_path / 'rgb.jpg')
    for f in ('grey.png', 'la.png', 'rgba.png', 'grey16.png', 'pal.png', 'cmyk.jpg', 'rgb.jpg'):
        x = load_image(tmp_path / f)
        assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1, f
    assert torch.equal(load_image(tmp_path / 'rgba.png')[:, :, 24:], torch.ones(3, 48, 24))
    g16 = load_image(tmp_path / 'grey16.png')
    assert g16[0, 0, 0] == -1 and g16[0, -1, -1] == 1 and torch.equal(g16[0], g16[2])
    assert load_image(tmp_path / 'grey.png', size=32).shape == (3, 32, 32)
    assert load_image(tmp_path / 'grey.png', size=(40, 64)).shape == (3, 40, 64)


def test_load_image_16bit_rgb(tmp_path):
    cv2 = pytest.importorskip('cv2')
    rgb = _rgb()
    cv2.imwrite(str(tmp_path / 'rgb16.png'), (rgb.astype(np.uint16) * 257)[..., ::-1])
    x = load_image(tmp_path / 'rgb16.png')
    assert x.shape == (3, 48, 48)
    assert (x - (torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1)).abs().max() < 1e-4


def _bad_files(d):
    good = d / 'good.png'
    Image.fromarray(_rgb()).save(good)
    (d / 'noise.png').write_bytes(np.random.default_rng(0).bytes(700))
    (d / 'cut.png').write_bytes(good.read_bytes()[:200])
    (d / 'notes.png').write_text('not a picture\nsecond line')
    (d / 'empty.jpg').write_bytes(b'')
    Image.fromarray(_rgb(16, 16)).save(d / 'icon.png')
    Image.fromarray(_rgb(48, 20)).save(d / 'thin.png')
    return ['noise.png', 'cut.png', 'notes.png', 'empty.jpg', 'icon.png', 'thin.png']


def test_bad_files_raise_one_line_image_error(tmp_path):
    for f in _bad_files(tmp_path):
        with pytest.raises(ImageError) as e: load_image(tmp_path / f)
        msg = str(e.value)
        assert str(tmp_path / f) in msg and '\n' not in msg, msg
    assert issubclass(ImageError, ValueError)
    with pytest.raises(FileNotFoundError, match='missing.png'): load_image(tmp_path / 'missing.png')


def _save(frame, path): Image.fromarray(to_uint8(frame)).save(path)


def test_frame_folder_drops_held_frames(tmp_path):
    clip = ToonClips(1, frames=6, size=64, seed=2)[0][0]
    for k in range(12): _save(clip[k // 2], tmp_path / f'frame{k + 1}.png')
    (tmp_path / 'notes.txt').write_text('ignored')
    ff = FrameFolder(tmp_path, frames=3, stride=1)
    assert (ff.n_frames, ff.dropped, len(ff)) == (6, 6, 4)
    assert [p.name for p in ff.paths] == [f'frame{k}.png' for k in (1, 3, 5, 7, 9, 11)]
    x, a = ff[2]
    assert x.shape == (3, 3, 64, 64) and a == {}
    assert (x - clip[2:5]).abs().max() <= 1 / 127
    assert len(FrameFolder(tmp_path, frames=3, drop_held=False)) == 10
    assert len(FrameFolder(tmp_path, frames=2, stride=2)) == 3
    xb, ab = next(iter(DataLoader(ff, batch_size=2)))
    assert xb.shape == (2, 3, 3, 64, 64) and ab == {}


def test_frame_folder_natural_sort(tmp_path):
    clip = ToonClips(1, frames=11, size=32, seed=1)[0][0]
    for k in range(11): _save(clip[k], tmp_path / f'f{k}.png')
    ff = FrameFolder(tmp_path, frames=11, size=32)
    assert [p.name for p in ff.paths] == [f'f{k}.png' for k in range(11)]


def test_frame_folder_errors(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image files'): FrameFolder(tmp_path / 'empty')
    few = tmp_path / 'few'; few.mkdir()
    clip = ToonClips(1, frames=3, size=32)[0][0]
    for k in range(3): _save(clip[k], few / f'{k}.png')
    with pytest.raises(ValueError, match='fewer than frames=8'): FrameFolder(few)
    (few / '3.png').write_text('oops')
    with pytest.raises(ImageError, match='3.png'): FrameFolder(few, frames=2)
    with pytest.raises(FileNotFoundError): FrameFolder(tmp_path / 'nope')


def test_read_video_and_folder_from_video(tmp_path):
    clip = ToonClips(1, frames=6, size=64)[0][0]
    gif = save_gif(clip, tmp_path / 'a.gif')
    v = read_video(gif)
    assert v.shape == (6, 3, 64, 64) and (v - clip).abs().mean() < 0.05
    assert read_video(gif, size=32).shape == (6, 3, 32, 32)
    assert len(FrameFolder(gif, frames=4, size=32)) == 3
    (tmp_path / 'b.mp4').write_text('not a video')
    with pytest.raises(ImageError, match='b.mp4'): read_video(tmp_path / 'b.mp4')


def test_triplets(tmp_path):
    for j in range(3):
        d = tmp_path / f'sample{j}'; d.mkdir()
        c = ToonClips(1, frames=3, size=64, seed=j)[0][0]
        for k in range(3): _save(c[k], d / f'frame{k + 1}.{"png" if j % 2 else "jpg"}')
    (tmp_path / 'other').mkdir()
    tri = Triplets(tmp_path, size=32)
    assert len(tri) == 3 and tri[1][0].shape == (3, 3, 32, 32) and tri[1][1] == {}
    half = tmp_path / 'half'; half.mkdir(); _save(c[0], half / 'frame1.png')
    with pytest.raises(ValueError, match='missing frame2, frame3'): Triplets(tmp_path)
    (tmp_path / 'none').mkdir()
    with pytest.raises(ValueError, match='no sample folders'): Triplets(tmp_path / 'none')


def test_frame_folder_mixed_sizes(tmp_path):
    Image.fromarray(_rgb(48, 48)).save(tmp_path / 'a1.png')
    Image.fromarray(_rgb(40, 40)).save(tmp_path / 'a2.png')
    with pytest.raises(ValueError, match='a2.png'): FrameFolder(tmp_path, frames=2, size=None)
    assert FrameFolder(tmp_path, frames=2, size=32)[0][0].shape == (2, 3, 32, 32)
