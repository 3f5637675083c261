"Checks of `stillframes.motion` (warping, block matching, the learned flow network) and of ToonClips' exact motion."
import math
import socket

import numpy as np
import pytest
import torch

from stillframes.data import ToonClips, render_clip, render_scene, sample_scene, PARALLAX, ease
from stillframes.motion import (TimeFlowNet, FlowTriplets, block_match_flows, flow_loss, fuse, load_flow_net, resize_flow,
                                save_flow_net, time_flows, train_flow, warp)


# --- exact motion in ToonClips -------------------------------------------------------------------

@pytest.mark.parametrize('size', [64, (72, 128)])
def test_true_flow_rebuilds_the_frame_on_visible_pixels(size):
    "Backward-warping a keyframe by the exact flow reproduces frame t where it is visible: far above a cross-fade, short of exact (edges, lines)."
    ds = ToonClips(6, frames=6, size=size, split='val', flow=True)
    se, se_fade = [], []
    for i in range(len(ds)):
        clip, at = ds[i]
        for k in range(1, 5):
            v = at['visible'][k, 0]
            se.append(((warp(clip[:1], at['flow'][k, 0][None])[0] - clip[k]) ** 2).mean(0)[v])
            se_fade.append(((clip[0] * (1 - k / 5) + clip[-1] * k / 5 - clip[k]) ** 2).mean(0))
    db = 10 * math.log10(4 / float(torch.cat(se).mean()))
    db_fade = 10 * math.log10(4 / float(torch.cat([s.flatten() for s in se_fade]).mean()))
    assert db > 26 and db > db_fade + 6, (db, db_fade)


def test_still_clip_has_zero_flow():
    clip, at = ToonClips(3, frames=5, size=(40, 56), motion=0.0, flow=True)[1]
    assert at['flow'].abs().max() < 1e-6 and at['visible'].all()          # exact up to float64 rounding of L_s L_t^-1
    assert at['flow'].shape == (5, 2, 2, 40, 56) and at['visible'].dtype == torch.bool


def test_pure_pan_has_uniform_flow_per_layer():
    scene = dict(sample_scene(np.random.default_rng(7)), pan=-0.15, chars=[])
    _, flow, _ = render_clip(scene, 3, (48, 80), flow=True)
    _, layers = render_scene(scene, 0.5, (48, 80), layers=True)
    for key, t_to in ((0, 0.0), (1, 1.0)):
        shift = -(-0.15) * (ease(t_to, 3) - ease(0.5, 3)) * 48        # pan in view heights -> pixels
        for layer, f in enumerate(PARALLAX):
            on = torch.from_numpy(layers == layer)
            if on.any():
                assert torch.allclose(flow[1, key, 0][on], torch.tensor(f * shift), atol=1e-4)
                assert flow[1, key, 1][on].abs().max() < 1e-5


def test_non_square_frames():
    ds = ToonClips(2, frames=3, size=(144, 256))
    assert ds[0][0].shape == (3, 3, 144, 256)
    with pytest.raises(ValueError, match='each side'): ToonClips(2, size=(16, 64))


# --- warping and block matching ------------------------------------------------------------------

def test_resize_flow_scales_values():
    f = resize_flow(torch.ones(1, 4, 8, 8), (32, 16))
    assert torch.allclose(f[0, :, 5, 5], torch.tensor([2., 4., 2., 4.]))


def test_block_matching_finds_a_shift():
    x = ToonClips(1, frames=2, size=64, split='test')[0][0][:1]
    moved = torch.roll(x, shifts=(2, -4), dims=(-2, -1))
    f = block_match_flows(x, moved, torch.ones(1))[:, :2]               # t = 1: the flow from `moved` back to x
    assert abs(float(f[0, 0, 16:48, 16:48].median()) - 4) < 0.5 and abs(float(f[0, 1, 16:48, 16:48].median()) + 2) < 0.5


# --- the learned flow network --------------------------------------------------------------------

@pytest.fixture(scope='module')
def small_net():
    torch.manual_seed(0)
    return TimeFlowNet(widths=(24, 16, 16))


@pytest.mark.parametrize('hw', [(70, 130), (33, 47), (300, 200)])
def test_shapes_at_odd_sizes(small_net, hw):
    a, b = torch.rand(2, 3, *hw) * 2 - 1, torch.rand(2, 3, *hw) * 2 - 1
    out = small_net(a, b, torch.tensor([0.2, 0.7]))
    assert out['flow'].shape == (2, 4, *hw) and out['mask'].shape == (2, 1, *hw)
    assert out['flow'].isfinite().all() and ((out['mask'] >= 0) & (out['mask'] <= 1)).all()


def test_t0_gives_zero_flow_to_keyframe_0():
    torch.manual_seed(1)
    net = TimeFlowNet(widths=(24, 16, 16))
    for p in net.parameters(): p.data.normal_(0, 0.1)                    # non-zero everywhere, not just at init
    a, b = torch.rand(3, 3, 40, 60) * 2 - 1, torch.rand(3, 3, 40, 60) * 2 - 1
    out = net(a, b, torch.tensor([0.0, 1.0, 0.5]))
    assert out['flow'][0, :2].abs().max() == 0 and out['flow'][1, 2:].abs().max() == 0
    assert out['flow'][2].abs().max() > 0


def test_batch_invariance(small_net):
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(4, 3, 48, 80, generator=g) * 2 - 1, torch.rand(4, 3, 48, 80, generator=g) * 2 - 1
    t = torch.tensor([0.1, 0.4, 0.6, 0.9])
    with torch.no_grad():
        full = small_net(a, b, t)['flow']
        alone = torch.cat([small_net(a[i:i + 1], b[i:i + 1], t[i:i + 1])['flow'] for i in range(4)])
    assert torch.allclose(full, alone, atol=1e-4, rtol=1e-4)


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    data = FlowTriplets(4, size=64, progress=False)
    net = TimeFlowNet(widths=(24, 16, 16))
    with torch.no_grad():      # off zero flow, where bilinear sampling has a kink and a gradient need not point downhill
        for block in net.blocks: block.out.weight.normal_(0, 0.01)
    fixed = data.batch([0, 1, 2, 3], [2, 3, 4, 5])
    loss = lambda: flow_loss(net(fixed[0], fixed[1], fixed[3]), *fixed[:3], fixed[4], fixed[5])[0]
    before = loss().item()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    l = loss(); opt.zero_grad(); l.backward(); opt.step()
    assert loss().item() < before


def test_train_flow_refuses_nan():
    data = FlowTriplets(2, size=64, progress=False)
    net = TimeFlowNet(widths=(16, 16, 16))
    with torch.no_grad(): net.blocks[0].out.bias.fill_(float('nan'))
    with pytest.raises(FloatingPointError, match='loss is nan'):
        train_flow(net, data, 1, batch_size=2)


def test_shipped_weights_load_offline(monkeypatch):
    def no_network(*a, **k): raise OSError('network disabled in this test')
    monkeypatch.setattr(socket, 'socket', no_network)
    net = load_flow_net()
    assert isinstance(net, TimeFlowNet) and not net.training
    a = ToonClips(1, frames=2, size=64, split='test')[0][0]
    out = net(a[:1], a[1:], torch.tensor([0.5]))
    assert out['flow'].isfinite().all()


def test_model_file_round_trip_and_bad_files(tmp_path, small_net):
    p = save_flow_net(small_net, tmp_path / 'f.pt', half=False)
    again = load_flow_net(p)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert torch.equal(again(a, b, 0.5)['flow'], small_net.eval()(a, b, 0.5)['flow'])
    (tmp_path / 'junk.pt').write_text('hello')
    with pytest.raises(ValueError, match='not a stillframes model file'): load_flow_net(tmp_path / 'junk.pt')
    with pytest.raises(FileNotFoundError, match='no such'): load_flow_net(tmp_path / 'none.pt')
