"Tests of the assembled model (chapter 03a): any size in, the same size out, batch invariance, model files."
import math
from pathlib import Path

import pytest
import torch

from stillframes.model import StillFrames, Timing, WarpRefiner, build_model, save_model, load_model, model_asset, MODEL_FORMAT
from stillframes.train import TrainConfig, build_from_config, model_config


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = build_from_config(TrainConfig.tiny(**{'generator.mask_init': 0.0}))
    torch.nn.init.normal_(m.refiner.head.weight, std=0.05)      # so that the refiner changes the frame
    return m.eval()


def test_animate_576x320_returns_576x320(model):
    a, b = torch.rand(3, 320, 576) * 2 - 1, torch.rand(3, 320, 576) * 2 - 1
    clip = model.animate(a, b, 5)
    assert clip.shape == (5, 3, 320, 576)
    assert torch.equal(clip[0], a) and torch.equal(clip[-1], b)
    assert clip.abs().max() <= 1


@pytest.mark.parametrize('hw', [(64, 64), (37, 91), (130, 70)])
def test_any_size_and_times(model, hw):
    a, b = torch.rand(2, 3, *hw) * 2 - 1, torch.rand(2, 3, *hw) * 2 - 1
    assert model.animate(a, b, 4).shape == (2, 4, 3, *hw)
    assert model.animate(a[0], b[0], times=[0.25, 0.5, 0.9]).shape == (3, 3, *hw)
    assert model.animate(a, b, times=[0.25, 0.5, 0.9]).shape == (2, 3, 3, *hw)


def test_batch_invariant(model):
    a, b = torch.rand(3, 3, 48, 80) * 2 - 1, torch.rand(3, 3, 48, 80) * 2 - 1
    together = model.animate(a, b, 5)
    for i in range(3): assert (model.animate(a[i], b[i], 5) - together[i]).abs().max() < 1e-4   # float32 rounding: conv kernels differ by batch size


def test_handover_prior_sharpens_the_blend_at_the_true_time(model):
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    t = torch.tensor([[0.25, 0.75]])
    with torch.no_grad():
        plain = build_model({**model.config(), 'handover': 1.0}).eval()
        plain.load_state_dict(model.state_dict())          # the same weights, no hand-over prior
        _, soft = plain.draw(a, b, t)
        _, sharp = model.draw(a, b, t)                     # handover 6 (the tiny preset)
    assert model.handover == 6.0
    assert sharp['blend'][0, 0].mean() > soft['blend'][0, 0].mean() and sharp['blend'][0, 1].mean() < soft['blend'][0, 1].mean()


def test_the_refiner_and_w_change_the_frame(model):
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    t = torch.tensor([[0.5]])
    with torch.no_grad():
        f, parts = model.draw(a, b, t)
        g, _ = model.draw(a, b, t, ws=parts['w'] + 3)
    assert (f - g).abs().max() > 1e-3
    assert set(parts) >= {'blend', 'mask', 'colour', 'warp_a', 'warp_b', 'u', 'w'}


def test_timing_is_monotone_and_pinned():
    tim = Timing(8, knots=4)
    torch.nn.init.normal_(tim.head.weight)
    wa, wb = torch.randn(5, 8), torch.randn(5, 8)
    t = torch.linspace(0, 1, 33).expand(5, -1)
    u = tim(t, wa, wb)
    assert torch.allclose(u[:, 0], torch.zeros(5)) and torch.allclose(u[:, -1], torch.ones(5), atol=1e-6)
    assert (u.diff(dim=1) >= 0).all() and not torch.allclose(u, t)


def test_model_file_round_trip_and_refusals(model, tmp_path):
    p = save_model(model, tmp_path / 'm.pt', half=False, command='test')
    back = load_model(p)
    a, b = torch.rand(3, 40, 60) * 2 - 1, torch.rand(3, 40, 60) * 2 - 1
    assert torch.allclose(back.animate(a, b, 4), model.animate(a, b, 4), atol=1e-6)
    assert torch.load(p, weights_only=False)['format'] == MODEL_FORMAT
    torch.save({'format': 'stillframes-model-1', 'config': {}, 'ema': {}}, tmp_path / 'old.pt')
    with pytest.raises(ValueError, match='old 64-px model'): load_model(tmp_path / 'old.pt')
    (tmp_path / 'junk.pt').write_bytes(b'\x89PNG not a checkpoint')
    with pytest.raises(ValueError, match='not a stillframes model file'): load_model(tmp_path / 'junk.pt')
    with pytest.raises(FileNotFoundError, match='no such model file'): load_model(tmp_path / 'missing.pt')
    other = build_model({**model.config(), 'refiner': dict(w_dim=model.w_dim, width=8, depth=3)})
    state = torch.load(p, weights_only=False)
    torch.save({**state, 'config': other.config()}, tmp_path / 'mixed.pt')
    with pytest.raises(ValueError, match='weights do not fit'): load_model(tmp_path / 'mixed.pt')


def test_shipped_models_load_offline():
    from stillframes.train import asset_path
    for path in (model_asset(), asset_path('tiny.pt')):
        assert path.is_file() and path.stat().st_size < 20e6, path
        m = load_model(path)
        assert m.refiner is not None
        out = m.animate(torch.zeros(3, 36, 52), torch.zeros(3, 36, 52), 3)
        assert out.shape == (3, 3, 36, 52) and torch.isfinite(out).all()
    assert load_model().config() == model_config(TrainConfig.small())      # the shipped model is the small preset


def test_model_config_follows_the_train_config():
    c = model_config(TrainConfig.small())
    assert c['method'] == 'motion' and c['timing'] is None and c['refiner']['width'] == 24 and c['motion']['work'] == 128 and c['handover'] == 6.0
    c = model_config(TrainConfig.tiny(**{'path.timing': 8, 'generator.refiner': False, 'motion.handover': 1.0}))
    assert c['timing'] == {'knots': 8} and c['refiner'] is None and c['handover'] == 1.0
    assert build_model(c).timing is not None
    with pytest.raises(ValueError, match="motion.init must be"): model_config(TrainConfig.tiny(**{'motion.init': 'rife'}))


def test_animate_draws_in_chunks_with_the_same_frames(model, monkeypatch):
    import stillframes.model as M
    a, b = torch.rand(3, 40, 56) * 2 - 1, torch.rand(3, 40, 56) * 2 - 1
    whole = model.animate(a, b, 9)
    monkeypatch.setattr(M, 'ANIMATE_PIXELS', 2 * 40 * 56)      # two in-betweens at a time
    chunked = model.animate(a, b, 9)
    assert chunked.shape == whole.shape == (9, 3, 40, 56) and (chunked - whole).abs().max() < 1e-4
    assert torch.equal(chunked[0], a) and torch.equal(chunked[-1], b)
    assert model.animate(a, b, 2).shape == (2, 3, 40, 56) and model.animate(a, b, times=[0.5, 0.25]).shape == (2, 3, 40, 56)
