"""Fast CPU checks of `stillframes.interpolation`: exact keyframes, slerp edge cases, spline through keys, a pinned MotionPath."""
import pytest
import torch

from stillframes.interpolation import METHODS, MotionPath, catmull_rom, interpolate, lerp, slerp, w_pca


@pytest.fixture
def keys():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g)


def frames(m): return torch.arange(m) / (m - 1)


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('m', [2, 5, 8])
def test_every_method_hits_the_keyframes_exactly(keys, method, m):
    w1, wm = keys
    torch.manual_seed(m)
    path = interpolate(w1, wm, m, method, motion=MotionPath(16, hidden=8))
    assert path.shape == (3, m, 16)
    assert torch.equal(path[:, 0], w1) and torch.equal(path[:, -1], wm)


def test_lerp_and_slerp_with_scalar_and_tensor_times(keys):
    w1, wm = keys
    for f in (lerp, slerp):
        assert torch.equal(f(w1, wm, 0.0), w1) and torch.equal(f(w1, wm, 1.0), wm)
        assert f(w1, wm, 0.3).shape == (3, 16)
        assert f(w1, wm, torch.tensor(0.3)).shape == (3, 16)
        assert f(w1, wm, torch.linspace(0, 1, 7)).shape == (3, 7, 16)
        assert f(w1, wm, torch.rand(3, 4)).shape == (3, 4, 16)
        p = f(w1, wm, torch.linspace(0, 1, 7))
        assert torch.equal(p[:, 0], w1) and torch.equal(p[:, -1], wm)
    with pytest.raises(ValueError, match='same shape'): lerp(w1, wm[:, :3], 0.5)


def test_slerp_parallel_antiparallel_and_zero_vectors_are_finite(keys):
    w1, _ = keys
    t = torch.linspace(0, 1, 9)
    torch.testing.assert_close(slerp(w1, 3 * w1, t), lerp(w1, 3 * w1, t))
    torch.testing.assert_close(slerp(w1, w1 * (1 + 1e-7), t), lerp(w1, w1 * (1 + 1e-7), t))
    assert slerp(w1, -w1, t).isfinite().all()
    zero = torch.zeros_like(w1)
    torch.testing.assert_close(slerp(zero, w1, t), lerp(zero, w1, t))
    assert slerp(zero, zero, t).isfinite().all()


def test_slerp_gradients_are_finite_for_parallel_inputs(keys):
    a = keys[0].clone().requires_grad_()
    slerp(a, 2 * a.detach(), torch.linspace(0, 1, 5)).sum().backward()
    assert a.grad.isfinite().all()


def test_slerp_preserves_norm_for_equal_norm_inputs(keys):
    w1, wm = keys
    wm = wm * w1.norm(dim=1, keepdim=True) / wm.norm(dim=1, keepdim=True)
    p = slerp(w1, wm, torch.linspace(0, 1, 11))
    torch.testing.assert_close(p.norm(dim=-1), w1.norm(dim=-1, keepdim=True).expand(3, 11), rtol=1e-5, atol=1e-5)
    assert (lerp(w1, wm, 0.5).norm(dim=-1) < w1.norm(dim=-1)).all()


def test_slerp_quarter_circle():
    x, y = torch.tensor([1., 0.]), torch.tensor([0., 1.])
    torch.testing.assert_close(slerp(x, y, 0.5), torch.tensor([2 ** -0.5, 2 ** -0.5]))
    torch.testing.assert_close(slerp(x, y, 1 / 3), torch.tensor([3 ** 0.5 / 2, 0.5]))


@pytest.mark.parametrize('K', [2, 3, 4, 5, 7])
def test_catmull_rom_passes_through_every_key(K):
    torch.manual_seed(K)
    keys = torch.randn(2, K, 6)
    assert torch.equal(catmull_rom(keys, frames(K)), keys)
    assert torch.equal(catmull_rom(keys, torch.linspace(0, 1, K)), keys)
    for k in range(K): assert torch.equal(catmull_rom(keys, k / (K - 1)), keys[:, k])
    assert catmull_rom(keys, torch.linspace(0, 1, 21)).shape == (2, 21, 6)


def test_catmull_rom_two_keys_is_lerp_and_is_c1():
    torch.manual_seed(0)
    keys = torch.randn(2, 2, 6)
    t = torch.linspace(0, 1, 9)
    torch.testing.assert_close(catmull_rom(keys, t), lerp(keys[:, 0], keys[:, 1], t))
    keys = torch.randn(1, 4, 3, dtype=torch.float64)
    h = 1e-6
    for knot in (1 / 3, 2 / 3):
        left = (catmull_rom(keys, knot) - catmull_rom(keys, knot - h)) / h
        right = (catmull_rom(keys, knot + h) - catmull_rom(keys, knot)) / h
        torch.testing.assert_close(left, right, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='at least 2 keyframes'): catmull_rom(keys[:, :1], 0.5)


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_motion_path_pinned_for_any_weights(keys, seed):
    w1, wm = keys
    torch.manual_seed(seed)
    mp = MotionPath(16, hidden=12, n_dirs=5, scale=3.0)
    with torch.no_grad():
        for p in mp.parameters(): p.normal_(0, 5)
        mp.set_directions(torch.randn(5, 16) * 10)
    for m in (2, 3, 8):
        path = mp(w1, wm, m)
        assert path.shape == (3, m, 16)
        assert torch.equal(path[:, 0], w1) and torch.equal(path[:, -1], wm)
    assert not torch.allclose(mp(w1, wm, 8), lerp(w1, wm, frames(8)))


def test_motion_path_gradients_reach_every_parameter(keys):
    w1, wm = keys
    torch.manual_seed(0)
    mp = MotionPath(16, hidden=12)
    target = torch.randn(3, 6, 16)
    (mp(w1, wm, 6) - target).pow(2).sum().backward()
    for name, p in mp.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert 'directions' in mp.state_dict() and not mp.directions.requires_grad


def test_motion_path_directions_and_errors(keys):
    w1, wm = keys
    mp = MotionPath(16, hidden=8)
    assert torch.equal(mp.directions, torch.eye(16))
    mp.set_directions(torch.zeros(16, 16))
    torch.testing.assert_close(mp(w1, wm, 5), lerp(w1, wm, frames(5)))
    with pytest.raises(ValueError, match=r'V: expected shape \(16, 16\)'): mp.set_directions(torch.zeros(3, 16))
    with pytest.raises(ValueError, match='m must be at least 2'): mp(w1, wm, 1)
    with pytest.raises(ValueError, match=r'w1: expected shape \(\*, 16\)'): mp(torch.zeros(3, 8), wm, 4)
    with pytest.raises(ValueError, match='n_dirs must be in'): MotionPath(16, n_dirs=20)
    V = MotionPath(16, hidden=8, n_dirs=4).directions
    torch.testing.assert_close(V @ V.T, torch.eye(4), rtol=1e-5, atol=1e-5)


def test_interpolate_errors(keys):
    w1, wm = keys
    with pytest.raises(ValueError, match='method must be one of'): interpolate(w1, wm, 4, 'spline')
    with pytest.raises(ValueError, match='needs `motion`'): interpolate(w1, wm, 4, 'motion')
    with pytest.raises(ValueError, match='m must be at least 2'): interpolate(w1, wm, 1)
    torch.testing.assert_close(interpolate(w1, wm, 5), lerp(w1, wm, frames(5)))


def test_w_pca_recovers_axes():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2000, 4, generator=g) * torch.tensor([4., 2., 1., 0.5]) - 3
    mean, comps, std = w_pca(w, 2)
    assert comps.shape == (2, 4) and std.shape == (2,) and mean.shape == (4,)
    torch.testing.assert_close(comps.abs(), torch.eye(4)[:2], atol=0.05, rtol=0)
    torch.testing.assert_close(std, torch.tensor([4., 2.]), atol=0.2, rtol=0)
