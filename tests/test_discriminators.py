"""Discriminators, losses and regularizers: shapes, gradients, spectral norm, hand-computed loss values,
FreezeD's trainable set, edge-promoting negatives and DiffAugment."""
import numpy as np
import pytest
import torch

from stillframes.discriminators import (ImageDiscriminator, SequenceDiscriminator, d_hinge_loss, g_hinge_loss,
                                        d_bce_loss, g_bce_loss, d_lsgan_loss, g_lsgan_loss, d_wgan_loss, g_wgan_loss,
                                        gradient_penalty, r1_penalty, freeze_d, edge_promoting_negatives, diff_augment)


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


@pytest.mark.parametrize('size,ndf', [(32, 4), (64, 4), (128, 4), (256, 2)])
def test_image_d_shapes(size, ndf):
    D = ImageDiscriminator(size, ndf=ndf)
    x = torch.rand(2, 3, size, size) * 2 - 1
    assert D(x).shape == (2, 1, 5, 5)
    logits, rec_loss, recs = D(x, real=True, quadrant=3)
    assert logits.shape == (2, 1, 5, 5) and rec_loss.ndim == 0
    assert recs.rec_all.shape == (2, 3, min(size, 128), min(size, 128))
    assert recs.rec_part.shape == (2, 3, min(size // 2, 128), min(size // 2, 128))
    assert recs.quadrant == 3


@pytest.mark.parametrize('size', [32, 64, 128, 256])
def test_sequence_d_shapes(size):
    D = SequenceDiscriminator(frames=8, size=size, ndf=2)
    out = D(torch.rand(1, 8, 3, size, size) * 2 - 1)
    assert [o.shape for o in out] == [(1, 1, 1, size // 8 - 1, size // 8 - 1), (1, 1, 1, size // 16 - 1, size // 16 - 1)]


def test_bad_inputs():
    with pytest.raises(ValueError, match=r'x: expected shape \(\*, 3, 64, 64\)'):
        ImageDiscriminator(64, ndf=4)(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r'clip: expected shape \(\*, 8, 3, 64, 64\)'):
        SequenceDiscriminator(8, 64, ndf=4)(torch.zeros(1, 3, 8, 64, 64))
    with pytest.raises(ValueError, match='size must be'):
        ImageDiscriminator(100)


def test_gradients_reach_every_parameter():
    D = ImageDiscriminator(64, ndf=4)
    logits, rec_loss, _ = D(torch.rand(2, 3, 64, 64) * 2 - 1, real=True)
    (d_hinge_loss(logits, -logits) + rec_loss).backward()
    missing = [n for n, p in D.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    Dseq = SequenceDiscriminator(8, 32, ndf=4)
    d_hinge_loss(Dseq(torch.rand(2, 8, 3, 32, 32) * 2 - 1), [torch.zeros(1)] * 2).backward()
    missing = [n for n, p in Dseq.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def _sigmas(model):
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    assert all(hasattr(m, 'parametrizations') for m in convs), 'every conv is spectrally normalized'
    return torch.stack([torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2) for m in convs])


def test_spectral_norm_sigma_is_one():
    D, Dseq = ImageDiscriminator(64, ndf=8).train(), SequenceDiscriminator(8, 32, ndf=8).train()
    for _ in range(3):
        D(torch.randn(2, 3, 64, 64), real=True)
        Dseq(torch.randn(2, 8, 3, 32, 32))
    for model, n_convs in [(D, 21), (Dseq, 8)]:
        sig = _sigmas(model)
        assert len(sig) == n_convs
        assert torch.allclose(sig, torch.ones_like(sig), atol=0.05), sig


def test_loss_values_by_hand():
    t = torch.tensor
    # hinge: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; relu(1-2)=0, relu(1+0.5)=1.5 -> 0.75
    assert d_hinge_loss(t([2., 0.5]), t([-2., 0.5])).item() == pytest.approx(1.0)
    assert g_hinge_loss(t([1., -3.])).item() == pytest.approx(1.0)
    # BCE at logit 0: softplus(0) = log 2 = 0.693147 for each term
    assert d_bce_loss(t([0.]), t([0.])).item() == pytest.approx(1.386294, abs=1e-6)
    assert g_bce_loss(t([0.])).item() == pytest.approx(0.693147, abs=1e-6)
    # BCE at large margins: softplus(-20) ~ 2.06e-9
    assert d_bce_loss(t([20.]), t([-20.])).item() == pytest.approx(0., abs=1e-8)
    # LSGAN: 0.5*mean([0, 1]) + 0.5*mean([0, 1]) = 0.5; G: 0.5*mean([0, 1]) = 0.25
    assert d_lsgan_loss(t([1., 0.]), t([0., 1.])).item() == pytest.approx(0.5)
    assert g_lsgan_loss(t([1., 0.])).item() == pytest.approx(0.25)
    # WGAN: mean(fake) - mean(real) = -1 - 2 = -3
    assert d_wgan_loss(t([1., 3.]), t([0., -2.])).item() == pytest.approx(-3.0)
    assert g_wgan_loss(t([0., -2.])).item() == pytest.approx(1.0)
    # patch maps average over patches; lists (scales) average over the list: (1.0 + 2.0) / 2
    assert d_hinge_loss([t([[2., 0.5]]), t([0.])], [t([[-2., 0.5]]), t([0.])]).item() == pytest.approx(1.5)
    assert g_hinge_loss([t([1.]), t([3.])]).item() == pytest.approx(-2.0)
    with pytest.raises(ValueError, match='differ in length'):
        d_hinge_loss([t([0.])] * 2, [t([0.])])


def test_gradient_penalty_linear_critic():
    u = torch.randn(3 * 16 * 16)
    u = u / u.norm()
    real, fake = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
    assert gradient_penalty(lambda x: x.flatten(1) @ u, real, fake).item() == pytest.approx(0., abs=1e-6)
    # ||grad|| = 3 -> weight * (3 - 1)^2 = 10 * 4 = 40
    assert gradient_penalty(lambda x: 3 * x.flatten(1) @ u, real, fake).item() == pytest.approx(40., rel=1e-4)
    # patch output: the critic value is the mean over patches, so four copies of <u, x> still have ||grad|| = 1
    patches = lambda x: (x.flatten(1) @ u).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    assert gradient_penalty(patches, real, fake, weight=1.).item() == pytest.approx(0., abs=1e-6)


def test_r1_linear_critic():
    u = torch.randn(3 * 8 * 8)
    u = 2 * u / u.norm()
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    # gamma / 2 * ||u||^2 = 10 / 2 * 4 = 20
    assert r1_penalty(x.flatten(1) @ u, x).item() == pytest.approx(20., rel=1e-5)
    assert r1_penalty(x.flatten(1) @ u, x, gamma=1.).item() == pytest.approx(2., rel=1e-5)
    with pytest.raises(RuntimeError, match='requires_grad'):
        r1_penalty(torch.zeros(4), torch.zeros(4, 3, 8, 8))


def test_r1_and_gp_train_d():
    D = ImageDiscriminator(32, ndf=4)
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    r1 = r1_penalty(D(x), x)
    r1.backward()
    assert r1.item() > 0 and D.to_logits[-1].parametrizations.weight.original.grad is not None


def test_freeze_d_image():
    D = ImageDiscriminator(64, ndf=4)
    trainable = freeze_d(D, 2)
    keep = ('down_16.', 'down_8.', 'sle_64_8.', 'to_logits.', 'decoder_all.', 'decoder_part.')
    expected = [n for n, _ in D.named_parameters() if n.startswith(keep)]
    assert trainable == expected
    assert [n for n, p in D.named_parameters() if p.requires_grad] == expected
    frozen = {n.split('.')[0] for n, p in D.named_parameters() if not p.requires_grad}
    assert frozen == {'from_rgb', 'down_32'}
    assert 'down_8.main.0.parametrizations.weight.original' in trainable
    assert 'down_32.main.0.parametrizations.weight.original' not in trainable
    assert len(freeze_d(D, 4)) == len(list(D.parameters()))
    with pytest.raises(ValueError, match=r'k must be in 0\.\.4'):
        freeze_d(D, 5)


def test_freeze_d_image_128_keeps_sle_with_its_stage():
    D = ImageDiscriminator(128, ndf=2)
    trainable = {n.split('.')[0] for n in freeze_d(D, 2)}
    assert trainable == {'down_16', 'sle_128_16', 'down_8', 'sle_64_8', 'to_logits', 'decoder_all', 'decoder_part'}


def test_freeze_d_sequence():
    D = SequenceDiscriminator(8, 64, ndf=4)
    assert freeze_d(D, 1) == [
        'clip_64.down_8.0.bias', 'clip_64.down_8.0.parametrizations.weight.original',
        'clip_64.head.bias', 'clip_64.head.parametrizations.weight.original',
        'clip_32.down_4.0.bias', 'clip_32.down_4.0.parametrizations.weight.original',
        'clip_32.head.bias', 'clip_32.head.parametrizations.weight.original']
    assert [n for n, p in D.named_parameters() if p.requires_grad] == freeze_d(D, 1)
    assert freeze_d(D, 0) == ['clip_64.head.bias', 'clip_64.head.parametrizations.weight.original',
                              'clip_32.head.bias', 'clip_32.head.parametrizations.weight.original']


def _outlined_disc(size=48):
    yy, xx = np.mgrid[:size, :size]
    d = np.hypot(yy - size / 2, xx - size / 2)
    img = np.full((size, size, 3), (200, 220, 90), np.uint8)
    img[d < size / 4] = (230, 80, 60)
    img[np.abs(d - size / 4) < 1.5] = 0
    return torch.from_numpy(img).permute(2, 0, 1).float()[None] / 127.5 - 1


def test_edge_promoting_negatives():
    frames = torch.cat([_outlined_disc(), torch.zeros(1, 3, 48, 48)])
    out, mask = edge_promoting_negatives(frames, return_mask=True)
    assert out.shape == frames.shape and mask.shape == (2, 1, 48, 48) and out.dtype == frames.dtype
    outside = ~mask.expand_as(frames)
    assert torch.equal(out[outside], frames[outside])
    changed = (out != frames).any(1, keepdim=True)
    assert changed[0].sum() > 0.3 * mask[0].sum()
    assert not (changed & ~mask).any()
    assert not mask[1].any() and torch.equal(out[1], frames[1])
    # the changed pixels lie within a few pixels of the outline, nowhere near the corners or the centre
    yy, xx = np.mgrid[:48, :48]
    ring = np.abs(np.hypot(yy - 24, xx - 24) - 12)
    assert ring[changed[0, 0].numpy()].max() <= 5
    assert out.min() >= -1 and out.max() <= 1


def test_diff_augment_clip_consistency():
    frame = _outlined_disc(32)
    clips = frame[:, None].expand(4, 8, 3, 32, 32)
    out = diff_augment(clips, 'color,translation,cutout')
    assert out.shape == clips.shape
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert not torch.equal(out[0], out[1])
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    diff_augment(x).sum().backward()
    assert x.grad is not None
    with pytest.raises(ValueError, match='unknown policy'):
        diff_augment(x, 'colour')
