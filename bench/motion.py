"""Motion estimation on held-out ToonClips, against the exact flow the renderer knows.

One row per method: `block_match` (parameter-free, chapter 02a), `farneback` (OpenCV dense flow
between the keyframes), `learned` (the shipped TimeFlowNet), `oracle` (the exact flow and
visibility). The first three turn keyframe flows into flows from time t under linear motion
(Super SloMo); `learned` predicts the flows from t directly.

- `epe`: mean endpoint error in pixels at the frame's size, over the pixels visible in the
  keyframe the flow points to, both flows (t->0 and t->1) pooled, in-betweens 1..m-2;
- `warp_psnr`: PSNR (dB, frames in [0, 1]) of the in-between made by warping both keyframes with
  the method's flows and blending them: by the net's mask (`learned`), by the true visibility
  (`oracle`), by 1 - t (the others, which have no visibility estimate);
- `ms_per_frame`: wall time of the flows, warps and blend per in-between, batched per clip.

    python bench/motion.py [--size 64 | --size 256 | --size 144x256] [--clips 100] [--motion 1.0] [--model FILE]
"""
import argparse, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stillframes.data import ToonClips
from stillframes.motion import block_match_flows, time_flows, fuse, load_flow_net
from stillframes.utils import to_uint8

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine


def size_arg(s):
    h, _, w = s.partition('x')
    return int(h) if not w else (int(h), int(w))


def farneback_flows(a, b, t):
    from stillframes.eval import farneback
    ua, ub = to_uint8(a), to_uint8(b)
    f01 = torch.stack([torch.from_numpy(farneback(x, y)).permute(2, 0, 1) for x, y in zip(ua, ub)]).float()
    f10 = torch.stack([torch.from_numpy(farneback(y, x)).permute(2, 0, 1) for x, y in zip(ua, ub)]).float()
    return torch.cat(time_flows(f01, f10, t), 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--size', type=size_arg, default=64, help='frame size: S or HxW (default 64)')
    ap.add_argument('--clips', type=int, default=100, help='held-out test clips (default 100)')
    ap.add_argument('--frames', type=int, default=8, help='frames per clip; the first and last are the keyframes (default 8)')
    ap.add_argument('--motion', type=float, default=1.0, help='ToonClips displacement scale (default 1.0)')
    ap.add_argument('--model', default=None, help='TimeFlowNet file (default: the shipped stillframes/assets/flow.pt)')
    ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    net = load_flow_net(a.model)
    ds = ToonClips(a.clips, frames=a.frames, size=a.size, split='test', motion=a.motion, flow=True)
    m = a.frames
    t = torch.arange(1, m - 1) / (m - 1)
    sums = {k: dict(err=0.0, n=0.0, psnr=[], secs=0.0, frames=0) for k in ('block_match', 'farneback', 'learned', 'oracle')}
    for i in range(a.clips):
        clip, at = ds[i]
        mid, gt, vis = clip[1:-1], at['flow'][1:-1].flatten(1, 2), at['visible'][1:-1].float()
        A, B = clip[:1].expand(m - 2, -1, -1, -1), clip[-1:].expand(m - 2, -1, -1, -1)
        for name in sums:
            t0 = time.perf_counter()
            with torch.no_grad():
                if name == 'learned':
                    out = net(A, B, t); flow, mask = out['flow'], out['mask']
                else:
                    if name == 'block_match': flow = block_match_flows(A, B, t)
                    elif name == 'farneback': flow = farneback_flows(A, B, t)
                    else: flow = gt
                    tt = t.view(-1, 1, 1, 1)
                    if name == 'oracle':
                        wa, wb = vis[:, :1] * (1 - tt), vis[:, 1:] * tt
                        mask = torch.where(wa + wb > 0, wa / (wa + wb).clamp_min(1e-6), 1 - tt.expand_as(wa))
                    else: mask = (1 - tt).expand(m - 2, 1, *clip.shape[-2:])
                frame = fuse(A, B, flow, mask).clamp(-1, 1)
            s = sums[name]
            s['secs'] += time.perf_counter() - t0; s['frames'] += m - 2
            err = (flow - gt).view(m - 2, 2, 2, *clip.shape[-2:]).norm(dim=2)            # endpoint error per direction
            s['err'] += float((err * vis).sum()); s['n'] += float(vis.sum())
            mse = ((frame - mid) / 2).pow(2).flatten(1).mean(1)
            s['psnr'] += (10 * torch.log10(1 / mse.clamp_min(1e-10))).tolist()
    rows = [dict(method=k, epe=s['err'] / s['n'], warp_psnr=float(np.mean(s['psnr'])), ms_per_frame=1000 * s['secs'] / s['frames'])
            for k, s in sums.items()]
    hw = a.size if isinstance(a.size, tuple) else (a.size, a.size)
    print(f"motion bench: {a.clips} held-out ToonClips (test split), {hw[1]}x{hw[0]} px, {m} frames (in-betweens 1..{m - 2}), motion {a.motion}")
    print(f"machine: {machine()}; learned: {a.model or 'stillframes/assets/flow.pt'}, working scale {net.working_size(*hw)}")
    print()
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=('', '.3f', '.2f', '.2f')))


if __name__ == '__main__':
    main()
