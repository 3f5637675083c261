"Mapping network, equalised learning rate, path-length penalty and perceptual path length."
import math

import pytest
import torch

from stillframes.mapping import (EqualLinear, MappingNetwork, normalize_2nd_moment, g_path_length_penalty,
                                 perceptual_path_length)


def test_equal_linear_scales():
    torch.manual_seed(0)
    for fan_in, lr_mul in [(512, 0.01), (64, 1.0), (3, 0.5)]:
        lin = EqualLinear(fan_in, 256, lr_mul=lr_mul)
        assert lin.scale == pytest.approx(lr_mul / math.sqrt(fan_in))
        assert lin.lr_mul == lr_mul
    lin = EqualLinear(512, 512, lr_mul=0.01)
    assert lin.weight.std().item() == pytest.approx(100, rel=0.02)
    assert (lin.weight * lin.scale).std().item() == pytest.approx(1 / math.sqrt(512), rel=0.02)
    lin = EqualLinear(4, 3, bias_init=2.0, lr_mul=0.1)
    x = torch.zeros(1, 4)
    assert torch.allclose(lin(x), torch.full((1, 3), 0.2))


def test_equal_linear_lrelu_gain():
    lin = EqualLinear(2, 2, bias=False, activation='lrelu')
    with torch.no_grad(): lin.weight.copy_(torch.eye(2) * math.sqrt(2))
    out = lin(torch.tensor([[1.0, -1.0]]))
    assert torch.allclose(out, torch.tensor([[math.sqrt(2), -0.2 * math.sqrt(2)]]))


def test_equal_linear_gradient_is_scaled_by_lr_mul():
    torch.manual_seed(0)
    a, b = EqualLinear(8, 8, lr_mul=1.0), EqualLinear(8, 8, lr_mul=0.01)
    with torch.no_grad(): b.weight.copy_(a.weight / 0.01)
    x = torch.randn(4, 8)
    assert torch.allclose(a(x), b(x), atol=1e-5)
    a(x).sum().backward(); b(x).sum().backward()
    assert torch.allclose(b.weight.grad, 0.01 * a.weight.grad, atol=1e-7)


def test_normalize_2nd_moment():
    z = torch.randn(5, 512) * 7
    assert torch.allclose(normalize_2nd_moment(z).square().mean(-1), torch.ones(5), atol=1e-5)


def test_mapping_output_statistics():
    torch.manual_seed(0)
    M = MappingNetwork()
    z = torch.randn(64, 512)
    w = M(z)
    assert w.shape == (64, 512) and torch.isfinite(w).all()
    assert 0.3 < w.square().mean().item() < 5
    assert torch.allclose(M(z * 10), w, atol=1e-5) and torch.allclose(M(z * 0.1), w, atol=1e-5)
    assert sum(p.numel() for p in M.parameters()) == 8 * (512 * 512 + 512) == 2_101_248


def test_w_avg_is_ema_of_batch_means():
    torch.manual_seed(0)
    M = MappingNetwork(z_dim=16, w_dim=8, n_layers=3, w_avg_beta=0.9)
    expected = torch.zeros(8)
    for _ in range(3):
        w = M(torch.randn(10, 16))
        expected = 0.9 * expected + 0.1 * w.detach().mean(0)
    assert torch.allclose(M.w_avg, expected, atol=1e-6)
    M.eval()
    before = M.w_avg.clone()
    M(torch.randn(10, 16))
    assert torch.equal(M.w_avg, before)
    assert 'w_avg' in M.state_dict()


def test_truncation():
    torch.manual_seed(0)
    M = MappingNetwork(z_dim=16, w_dim=8, n_layers=2)
    M(torch.randn(32, 16))
    M.eval()
    z = torch.randn(4, 16)
    assert torch.allclose(M(z, psi=0.0), M.w_avg.expand(4, 8))
    w = M(z)
    assert torch.allclose(M(z, psi=0.7), M.w_avg + 0.7 * (w - M.w_avg), atol=1e-6)


def test_mapping_bad_input():
    with pytest.raises(ValueError, match=r'z: expected shape \(\*, 512\)'): MappingNetwork()(torch.randn(2, 256))


def _linear_generator(k=12, c=2.5, h=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = c * torch.linalg.qr(torch.randn(3 * h * h, k, generator=g))[0]
    return A, (lambda w: (w @ A.T).view(-1, 3, h, h))


def test_path_length_matches_analytic_linear_generator():
    k, c, h = 12, 2.5, 8
    A, gen = _linear_generator(k, c, h)
    assert torch.allclose(A.T @ A, c**2 * torch.eye(k), atol=1e-4)
    ws = torch.randn(512, k, requires_grad=True)
    torch.manual_seed(123)
    penalty, pl_mean, lengths = g_path_length_penalty(gen(ws), ws, 0.5, decay=0.01)
    torch.manual_seed(123)
    y = torch.randn(512, 3, h, h) / math.sqrt(h * h)
    assert torch.allclose(lengths, (y.flatten(1) @ A).norm(dim=1), atol=1e-5)
    assert lengths.square().mean().item() == pytest.approx(c**2 * k / (h * h), rel=0.1)
    assert pl_mean.item() == pytest.approx(0.5 + 0.01 * (lengths.mean().item() - 0.5), abs=1e-6)
    assert penalty.item() == pytest.approx((lengths - pl_mean).square().mean().item(), rel=1e-5)


def test_path_length_per_layer_ws_and_gradients():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 3 * 4 * 4)
    ws = torch.randn(4, 5, 8, requires_grad=True)
    images = lin(ws.mean(1)).view(4, 3, 4, 4)
    penalty, pl_mean, lengths = g_path_length_penalty(images, ws, torch.tensor(0.0))
    assert lengths.shape == (4,) and not lengths.requires_grad and not pl_mean.requires_grad
    penalty.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='ws: expected batch 4'): g_path_length_penalty(images, ws[:2], 0.0)


def _toy(rough, w_dim=8, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    A, B = torch.randn(2, 3 * size * size, w_dim, generator=g) / math.sqrt(w_dim)
    return lambda w: torch.tanh(w @ A.T + rough * torch.sin(1000 * w) @ B.T).view(-1, 3, size, size)


def _pixel_distance(a, b): return (a - b).square().flatten(1).mean(1)


@pytest.mark.parametrize('space', ['w', 'z'])
def test_ppl_rough_generator_is_larger(space):
    torch.manual_seed(0)
    M = MappingNetwork(z_dim=8, w_dim=8, n_layers=4)
    smooth = perceptual_path_length(_toy(0.0), M, _pixel_distance, n=200, space=space, batch=50)
    rough = perceptual_path_length(_toy(0.05), M, _pixel_distance, n=200, space=space, batch=50)
    assert 0 < smooth < rough / 5


def test_ppl_linear_w_matches_direct_computation():
    torch.manual_seed(0)
    M = MappingNetwork(z_dim=8, w_dim=8, n_layers=2)
    A, gen = _linear_generator(k=8, c=1.0, h=4)
    ppl, d = perceptual_path_length(gen, M, _pixel_distance, n=64, space='w', batch=16, seed=3, return_dists=True)
    g = torch.Generator().manual_seed(3)
    ref = []
    with torch.no_grad():
        for _ in range(4):
            z = torch.randn(2, 16, 8, generator=g); torch.rand(16, 1, generator=g)
            ref.append(_pixel_distance(gen(M(z[0])), gen(M(z[1]))))
    assert torch.allclose(torch.as_tensor(d), torch.cat(ref), rtol=1e-2)
    assert ppl > 0


def test_ppl_leaves_mapping_state_alone():
    M = MappingNetwork(z_dim=8, w_dim=8, n_layers=2).train()
    before = M.w_avg.clone()
    a = perceptual_path_length(_toy(0.0), M, _pixel_distance, n=20, batch=8, seed=1)
    b = perceptual_path_length(_toy(0.0), M, _pixel_distance, n=20, batch=8, seed=1)
    assert a == b and M.training and torch.equal(M.w_avg, before)
    with pytest.raises(ValueError, match="space must be"): perceptual_path_length(_toy(0.0), M, _pixel_distance, space='x')
    with pytest.raises(ValueError, match=r'distance\(a, b\)'):
        perceptual_path_length(_toy(0.0), M, lambda a, b: _pixel_distance(a, b)[:1], n=4, batch=4)


def test_path_length_needs_graph():
    with pytest.raises(ValueError, match='ws must require grad'): g_path_length_penalty(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4), 0.0)


def test_path_length_penalty_of_an_image_that_ignores_w_has_finite_gradients():
    # the shipped small run's NaN at step 1137: a saturated mask made the frames independent of w, sqrt(0)'s slope is infinite,
    # and 0 * inf put NaN into the mapping's and encoder's gradients while every loss stayed finite
    ws = torch.randn(2, 4, requires_grad=True)
    imgs = torch.sigmoid(ws.sum(1) * 0 + 200.0).view(2, 1, 1, 1).expand(2, 3, 4, 4)
    pen, _, lengths = g_path_length_penalty(imgs, ws, torch.tensor(0.0))
    pen.backward()
    assert lengths.max() < 1e-5 and torch.isfinite(ws.grad).all()
