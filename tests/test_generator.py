"""Fast CPU checks of `stillframes.generator`: shapes at every size, tanh range, gradients, `w` at every scale, compositing."""
import pytest
import torch

from stillframes.generator import CHANNELS, SIZES, Generator, composite, composite_penalties, sle_pairs


@pytest.mark.parametrize('size,batch', [(32, 2), (64, 2), (128, 2), (256, 1)])
def test_shapes_and_tanh_range(size, batch):
    torch.manual_seed(0)
    G = Generator(size, w_dim=32, ngf=4)
    x = G(torch.randn(batch, 32) * 10)
    assert x.shape == (batch, 3, size, size)
    assert x.abs().max() <= 1
    assert G.size == size and G.state_dict()['_extra_state']['size'] == size


def test_block_names_follow_resolution():
    G = Generator(128, w_dim=16, ngf=4)
    names = {n for n, _ in G.named_children()}
    assert {'feat_4', 'feat_8', 'feat_64', 'feat_128', 'sle_64', 'sle_128', 'to_rgb'} <= names
    assert 'feat_256' not in names and 'sle_256' not in names
    assert set(CHANNELS) >= set(G.resolutions)


def test_unsupported_size():
    for bad in (16, 48, 512):
        with pytest.raises(ValueError, match=f'size must be one of .*got {bad}'): Generator(bad)
    assert sle_pairs(32) == {32: 4} and set(SIZES) == {32, 64, 128, 256}


@pytest.mark.parametrize('composite_head,norm', [(False, 'batch'), (True, 'batch'), (True, 'none')])
def test_gradients_reach_every_parameter(composite_head, norm):
    torch.manual_seed(0)
    G = Generator(64, w_dim=16, ngf=4, composite=composite_head, norm=norm)
    w = torch.randn(3, 16)
    base = torch.rand(3, 3, 64, 64) * 2 - 1 if composite_head else None
    out = G(w, base=base)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('train', [True, False])
def test_w_changes_output_at_every_scale(train):
    torch.manual_seed(0)
    G = Generator(128, w_dim=16, ngf=8).train(train)
    wa, wb = torch.randn(2, 16), torch.randn(2, 16)
    with torch.no_grad():
        ref = G(wa)
        for r in G.resolutions[1:]:
            h = getattr(G, f'feat_{r}').register_forward_pre_hook(lambda m, args: (args[0], wb))
            out = G(wa)
            h.remove()
            assert (out - ref).abs().max() > 1e-4, f'w at feat_{r} has no effect'
        assert torch.equal(G(wa), ref)


def test_mask_forced_to_one_returns_base_exactly():
    torch.manual_seed(0)
    G = Generator(32, w_dim=16, ngf=4, composite=True)
    with torch.no_grad(): G.to_mask.weight.zero_(); G.to_mask.bias.fill_(100.)
    base = torch.rand(2, 3, 32, 32) * 2 - 1
    frame, A = G(torch.randn(2, 16), base=base, return_mask=True)
    assert torch.equal(A, torch.ones_like(A))
    assert torch.equal(frame, base)
    with torch.no_grad(): G.to_mask.bias.fill_(-100.)
    frame = G(torch.randn(2, 16), base=base)
    assert not torch.allclose(frame, base)


def test_composite_blend_and_errors():
    c, b = torch.full((1, 3, 2, 2), -1.), torch.full((1, 3, 2, 2), 1.)
    A = torch.tensor([[[[1., 0.], [0.5, 0.25]]]])
    torch.testing.assert_close(composite(c, A, b)[0, 0], torch.tensor([[1., -1.], [0., -0.5]]))
    G = Generator(32, w_dim=8, ngf=4, composite=True)
    with pytest.raises(ValueError, match='needs `base`'): G(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r'base: expected shape \(2, 3, 32, 32\)'): G(torch.randn(2, 8), base=torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match='composite=True'): Generator(32, w_dim=8, ngf=4)(torch.randn(2, 8), return_mask=True)
    with pytest.raises(ValueError, match=r'w: expected shape \(\*, 8\)'): G(torch.randn(2, 9), base=torch.zeros(2, 3, 32, 32))


def test_composite_penalties_known_values():
    A = torch.zeros(2, 1, 3, 3)
    A[0, 0, 1, 1] = 1.
    tv, sat = composite_penalties(A)
    assert tv.item() == pytest.approx(4 / 2)
    assert sat.item() == pytest.approx(1 / 18)
    A = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]])
    tv, sat = composite_penalties(A)
    assert tv.item() == 0 and sat.item() == pytest.approx(0.25)
    A = torch.tensor([[[[0., 1.], [0., 1.]]]])
    tv, sat = composite_penalties(A)
    assert tv.item() == pytest.approx(2.) and sat.item() == pytest.approx(0.5)


def test_checkpoint_records_size_and_rejects_mismatch():
    G = Generator(64, w_dim=16, ngf=4)
    sd = G.state_dict()
    Generator(**sd['_extra_state']).load_state_dict(sd)
    with pytest.raises(ValueError, match='checkpoint is a Generator'):
        Generator(32, w_dim=16, ngf=4).load_state_dict(sd)
