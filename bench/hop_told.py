"""Can the flow network draw the hop? The shipped TimeFlowNet fine-tuned with a loss on the pixels of hopping characters,
told or not told which keyframe pixels those are.

An experiment, not a model: the hop mask is the renderer's (privileged, like the flow supervision), at training and at
test time, so `--told` measures what a perfect hop reader in front of the flow network would allow. With `--told`, each
keyframe's hop mask (pixels of characters that hop) joins its learned features as one more channel; the blocks' first
convolutions get zero weights for it, so the network starts as the shipped one. Either way the flow network is fine-tuned
for `--steps` steps (Adam, lr decayed linearly, on `--clips` fresh ToonClips at `--size` and half of it, as
`stillframes-flow` trains) with the flow loss of chapter 02a plus `--lam` times the mean L1 flow error on the pixels of
hopping characters. Then, on the 100 test clips of setting (a): the hop table of bench/hop.py, and the in-betweens warped
with the shipped hand-over prior (gamma 6) scored as bench/peers.py scores them. Writes NAME.csv/.md (hop table) and
NAME_scores.csv.

    python bench/hop_told.py [--told] [--lam 1] [--steps 1500] [--clips 2000] [--name hop_told] [--out media/motion] [--threads N]
"""
import argparse, math, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from stillframes.data import ToonClips, render_scene, LAYERS
from stillframes.eval import evaluate
from stillframes.motion import FlowTriplets, flow_loss, load_flow_net, warp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_counts, machine, write_atomic
import hop


def hop_mask(s:dict, t:float, size) -> torch.Tensor:
    "Pixels `(h, w)` bool of the characters of scene `s` that hop, at time `t`."
    ids = [len(LAYERS) + j for j, ch in enumerate(s['chars']) if ch['hop'] > 0]
    return torch.from_numpy(np.isin(render_scene(s, t, size, layers=True)[1], ids))


class ToldFeatures(nn.Module):
    "The network's keyframe features with the keyframe's hop mask as one more channel; `masks` holds the next calls' masks (A, then B)."
    def __init__(self, features:nn.Module): super().__init__(); self.features, self.masks, self.size = features, [], None
    def forward(self, x):
        m = self.masks.pop(0).to(x.dtype)[:, None]
        if m.shape[-2:] != self.size: m = F.interpolate(m, size=self.size, mode='area')
        m = F.pad(m, (0, x.shape[-1] - m.shape[-1], 0, x.shape[-2] - m.shape[-2]), mode='replicate')   # as the frames are padded
        return torch.cat([self.features(x), m], 1)


def told(net) -> nn.Module:
    "`net` with a hop-mask channel after each keyframe's features, its weights zero in every block: the same flows until trained."
    a = 6 + net.feat                                                        # the blocks' inputs: A, B (3 each), A's features, B's ...
    for blk in net.blocks:
        conv = blk.head[0][0]
        w = conv.weight.data
        new = nn.Conv2d(w.shape[1] + 2, w.shape[0], 3, conv.stride, 1)
        nw = torch.zeros(w.shape[0], w.shape[1] + 2, *w.shape[2:])
        nw[:, :a], nw[:, a + 1:a + 1 + net.feat], nw[:, a + 2 + net.feat:] = w[:, :a], w[:, a:a + net.feat], w[:, a + net.feat:]
        new.weight.data, new.bias.data = nw, conv.bias.data.clone()
        blk.head[0][0] = new
    net.features = ToldFeatures(net.features)
    return net


class Motion(nn.Module):
    "The flow network, handed the hop masks of the keyframes when it is `told` (looked up by keyframe in `masks`)."
    def __init__(self, net, masks:dict=None): super().__init__(); self.net, self.masks = net, masks
    def forward(self, a, b, t, ma=None, mb=None):
        if isinstance(self.net.features, ToldFeatures):
            if ma is None: ma, mb = (torch.stack([self.masks[float(x.sum())][e] for x in a]) for e in (0, 1))
            self.net.features.size = self.net.working_size(*a.shape[-2:])
            self.net.features.masks = [ma, mb]
        return self.net(a, b, t)


def fine_tune(motion:Motion, data:FlowTriplets, masks:list, steps:int, lam:float, lr:float, log=print):
    "Fine-tune with the flow loss plus `lam` x the L1 flow error on hopping pixels; `masks[i]` (frames, h, w) are clip i's hop masks."
    opt = torch.optim.Adam(motion.parameters(), lr=lr)
    motion.train()
    for step in range(steps):
        g = torch.Generator().manual_seed(7 * 1_000_003 + step)
        idx = torch.randint(len(data), (16,), generator=g).tolist()
        ks = torch.randint(1, data.m - 1, (16,), generator=g).tolist()
        flip, rev = torch.rand(16, generator=g) < 0.5, torch.rand(16, generator=g) < 0.5
        half = step % 2 == 0
        a, b, x, t, flow, vis = data.batch(idx, ks, half=half, flip=flip, reverse=rev)
        at = torch.stack([masks[i][k] for i, k in zip(idx, ks)])
        ma, mb = torch.stack([masks[i][0] for i in idx]), torch.stack([masks[i][-1] for i in idx])
        r = rev.view(-1, 1, 1); ma, mb = torch.where(r, mb, ma), torch.where(r, ma, mb)    # played backwards: the keyframes swap
        fl = lambda y: torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
        at, ma, mb = fl(at), fl(ma), fl(mb)
        if half: at, ma, mb = at[:, ::2, ::2], ma[:, ::2, ::2], mb[:, ::2, ::2]
        for grp in opt.param_groups: grp['lr'] = lr * (1 - step / steps)
        out = motion(a, b, t, ma, mb)
        loss, parts = flow_loss(out, a, b, x, flow, vis)
        n, _, h, w = x.shape
        wgt = at[:, None].float() * vis.float()
        err = (out['flow'] - flow).view(n, 2, 2, h, w).abs().sum(2) * (64 / max(h, w))
        extra = (err * wgt).sum() / wgt.sum().clamp_min(1)
        loss = loss + lam * extra
        if not math.isfinite(loss.item()): raise FloatingPointError(f"hop_told: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if log and step % 100 == 0: log(f"step {step}/{steps} flow {parts['flow']:.3f} hop {extra.item():.3f}")
    return motion.eval()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--told', action='store_true', help='hand the network the keyframes\' hop masks')
    ap.add_argument('--lam', type=float, default=1.0, help='weight of the flow loss on hopping pixels (default 1)')
    ap.add_argument('--steps', type=int, default=1500)
    ap.add_argument('--clips', type=int, default=2000, help='training clips (ToonClips train split, seed 1: not the shipped network\'s)')
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-4)
    ap.add_argument('--test', type=int, default=100, help='test clips of setting (a) (default 100)')
    ap.add_argument('--name', default='hop_told')
    ap.add_argument('--out', default='media/motion')
    ap.add_argument('--threads', type=int)
    a = ap.parse_args(argv)
    check_counts(ap, a, ('steps', 'clips', 'test', 'threads'))
    if a.threads: torch.set_num_threads(a.threads)
    t0 = time.time()
    torch.manual_seed(0)
    net = load_flow_net().float()
    motion = Motion(told(net) if a.told else net)
    data = FlowTriplets(a.clips, a.size, seed=1, progress=False)
    motions = (0.5, 1.0, 1.5)                                                   # as FlowTriplets draws them: clip i at motions[i % 3]
    dss = [ToonClips(a.clips, frames=data.m, size=a.size, split='train', seed=1, motion=m) for m in motions]
    none = torch.zeros(data.m, a.size, a.size, dtype=torch.bool)
    masks = [torch.stack([hop_mask(dss[i % 3].scene(i), k / (data.m - 1), a.size) for k in range(data.m)]) if a.told or a.lam else none
             for i in range(a.clips)]                                   # read only by the told channel and the hop-pixel loss
    fine_tune(motion, data, masks, a.steps, a.lam, a.lr)
    secs = time.time() - t0
    ds = ToonClips(a.test, frames=8, size=64, split='test', motion=1.0, flow=True)
    motion.masks = {float(ds.render(i, 0.0).sum()): (hop_mask(ds.scene(i), 0.0, 64), hop_mask(ds.scene(i), 1.0, 64)) for i in range(len(ds))}
    table = hop.summary(hop.lifts(motion, ds))

    def warped(x, y, t, gamma=6.0):
        with torch.no_grad(): out = motion(x, y, torch.full((x.shape[0],), float(t)))
        tt = torch.full_like(out['mask'], float(t))
        m = torch.sigmoid(torch.logit(out['mask'], eps=1e-4) + (gamma - 1) * torch.logit(1 - tt, eps=1e-4))
        return (m * warp(x, out['flow'][:, :2]) + (1 - m) * warp(y, out['flow'][:, 2:])).clamp(-1, 1)
    clips = torch.stack([ds[i][0] for i in range(len(ds))])
    scores, _ = evaluate({f"fine-tuned{', told the hop' if a.told else ''} (gamma 6)": warped}, clips, batch_size=10, progress=False, device='cpu')
    head = (f"the shipped flow network fine-tuned {a.steps} steps on {a.clips} clips at {a.size} px, hop-pixel loss x {a.lam:g}, "
            f"{'told' if a.told else 'not told'} the keyframes' hop masks ({secs:.0f} s); {a.test} test clips of setting (a)\n"
            f"machine: {machine()}")
    md = f"{head}\n\n{table.round(3).to_markdown(index=False)}\n\n{scores.drop(columns='ms_per_frame').round(4).to_markdown()}\n"
    print(md)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / f'{a.name}.csv', table.to_csv(index=False))
    write_atomic(out / f'{a.name}_scores.csv', scores.to_csv())
    write_atomic(out / f'{a.name}.md', md)


if __name__ == '__main__':
    main()
