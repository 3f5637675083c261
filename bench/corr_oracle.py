"""What would a perfect keyframe matcher be worth? The flow network started from the true keyframe flows.

Two learned matchers (bench/global_match.py) did not help the shipped flow network: one was no better than zero flow, the
other found the characters of (a) better (7.98 px against the network's 9.91) but was 2.7 px off on the rest, and
started from either the network scored lower. This bench asks the question without a matcher: the network starts from
the true keyframe flows F_0->1 and F_1->0 of each test clip (chapter 02a's `corr=`; privileged, read off the renderer),
the correspondence no matcher can beat, 0 px on the characters and on the rest. So its rows bound what any matcher,
learned or segment-guided (AnimeInterp's SGM), can bring to this network zero-shot.

Rows, each told the clock t or each pixel's own timing u(t) (bench/timing_told.py's time map, privileged too):
- the shipped flow network, as shipped (from rest);
- the same network started from the true keyframe flows, zero-shot, and (`--fine-tune STEPS`) fine-tuned so, as
  bench/timing_told.py fine-tunes its controls from rest (same clips, batches, lr and seed: its table holds them);
- the true keyframe flows alone: linear motion between them (Super SloMo, eq. 4), backward warps and the mask prior;
- the true keyframe flows alone, splatted forward (softmax splatting, Niklaus & Liu 2020): each keyframe pixel moved
  by u F_0->1 (from A) or (1 - u) F_1->0 (from B), u the clock or the pixel's own ease; no network, no mask. Where the
  backward warps read the flow at the in-between's pixel, which at large motion belongs to something else, this moves
  each pixel by its own flow, so it is what a matcher that is right everywhere gives a warping in-betweener. It knows the
  ease (told) but not the hop, the bend or the sway, as the ceiling's 'told the ease' (bench/ceiling.py) re-renders.

The rows with a network or the backward warps use the shipped hand-over prior (gamma 6, no refiner); all are scored as
bench/peers.py scores its methods, on the same test clips; the epe columns are both flows at every in-between against
the true ones, on the characters' visible pixels and the rest's (the splatted rows have no backward flows to score).
Writes NAME.csv/.md (default corr_oracle). With `--matcher CKPT` the keyframe flows of global_match's matcher are splatted too.

Measured (media/motion/corr_oracle.md, 1414 s): started zero-shot from the true flows the network breaks (17.41 dB in (a)
against 19.52 from rest, 12.4 px off on the characters against 6.1), so global_match's zero-shot rows measured mostly
the network (16.78 dB from the matcher); fine-tuned 1500 steps from them it gains at most 0.30 dB on its controls and its toon FD is
worse in all six pairs. Splatted and told the ease, the true flows give 19.90 dB / 0.841 / FD 6.44 in (a), 22.79 /
0.908 / 3.99 in (b), 20.38 / 0.889 / 8.40 in (c): no row meets the three targets in any setting, and flows less than
true (characters moved rigidly, 3.4 px off on them; the network's own; the matcher's) tear under splatting (FD 14 to 54 in (a)).

    python bench/corr_oracle.py [--settings a b c] [--clips N] [--fine-tune STEPS] [--train-clips N] [--matcher CKPT] [--splat-only] [--name N] [--out media/motion] [--threads N]
"""
import argparse, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from stillframes.data import ToonClips, render_scene, ease, layer_motion, scene_pose, LAYERS
from stillframes.eval import evaluate
from stillframes.motion import load_flow_net, train_flow, warp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_counts, machine, write_table
from peers import SETTINGS, setting
from timing_told import TimedTriplets, run as score


def true_corr(key:str, clips:int=None) -> dict:
    "The true keyframe flows (F_0->1, F_1->0) `(2, H, W)` each of the test clips of setting `key`, keyed as timing_told keys its maps: by the first keyframe's pixel sum."
    st = setting(key, clips)
    ds = ToonClips(st['clips'], frames=8, size=st['size'], split='test', motion=st['motion'], flow=True)
    table = {}
    for i in range(len(ds)):
        clip, at = ds[i]
        table[float(clip[0].double().sum())] = (at['flow'][0][1].float(), at['flow'][-1][0].float())  # frame 0 -> B, frame m-1 -> A
    if len(table) != len(ds): raise RuntimeError(f"corr_oracle: two test clips of setting {key} share a first keyframe's pixel sum")
    return table


def rigid_corr(key:str, clips:int=None) -> dict:
    """The keyframe flows of a matcher that finds every character and moves it rigidly, keyed as `true_corr`: each character's
    pixels by the displacement of its centre (neither its turn nor its squash and stretch), the scenery by its true motion;
    what segment matching (AnimeInterp's SGM) gives at best, one translation per segment."""
    st = setting(key, clips)
    ds = ToonClips(st['clips'], frames=8, size=st['size'], split='test', motion=st['motion'])
    table = {}
    for i in range(len(ds)):
        s, pair = ds.scene(i), []
        frame, lay0 = render_scene(s, 0.0, ds.hw, ds.style, ds.ss, layers=True)
        lay1 = render_scene(s, 1.0, ds.hw, ds.style, ds.ss, layers=True)[1]
        for lay, (t, t_to) in ((lay0, (0.0, 1.0)), (lay1, (1.0, 0.0))):
            h, w = lay.shape
            P = np.stack(np.broadcast_arrays((1 - w / h) / 2 + (np.arange(w) + 0.5)[None] / h, (np.arange(h) + 0.5)[:, None] / h), -1)
            A, b = layer_motion(s, t, t_to)
            A[len(LAYERS):] = np.eye(2)                                # a character: its centre's displacement, its shape kept
            b[len(LAYERS):] = [np.array(char_centre(ch, t_to, s)) - char_centre(ch, t, s) for ch in s['chars']]
            Q = np.einsum('hwij,hwj->hwi', A[lay], P) + b[lay]
            pair.append(torch.from_numpy(((Q - P) * h).astype(np.float32).transpose(2, 0, 1).copy()))
        table[float(ds[i][0][0].double().sum())] = tuple(pair)
    return table


def char_centre(ch:dict, t:float, s:dict) -> tuple:
    "Where character `ch` of scene `s` is drawn at `t`, in view units: its centre less the camera's pan."
    (x, y), _, _ = scene_pose(ch, t)
    return x - s['pan'] * ease(t, 3), y


def source_times(key:str, clips:int=None, m:int=8) -> dict:
    """Each keyframe pixel's own time at each in-between, keyed as `true_corr`: `{k: (u_A, u_B)}` `(1, H, W)` each, the ease at
    t = k/(m-1) of the character that covers the pixel in keyframe A (B), the camera's in-out ease elsewhere. Where timing_told's
    map gives the time at the in-between's pixels, for backward warps, these give it where the pixels start, for splatting."""
    st = setting(key, clips)
    ds = ToonClips(st['clips'], frames=m, size=st['size'], split='test', motion=st['motion'])
    table = {}
    for i in range(len(ds)):
        s = ds.scene(i)
        frame, lay0 = render_scene(s, 0.0, ds.hw, ds.style, ds.ss, layers=True)
        lays = [torch.from_numpy(lay0), torch.from_numpy(render_scene(s, 1.0, ds.hw, ds.style, ds.ss, layers=True)[1])]
        maps = {}
        for k in range(1, m - 1):
            t, pair = k / (m - 1), []
            for lay in lays:
                u = torch.full(lay.shape, ease(t, 3))
                for j, ch in enumerate(s['chars']): u[lay == len(LAYERS) + j] = ease(t, ch['ease'])
                pair.append(u[None])
            maps[k] = tuple(pair)
        table[float(ds[i][0][0].double().sum())] = maps
    return table


def splat(x:torch.Tensor, flow:torch.Tensor, metric:torch.Tensor) -> tuple:
    """Forward warp: every pixel of `x` (N,C,H,W) moved by `flow` (N,2,H,W) in pixels and spread bilinearly over the four pixels
    around where it lands, weighed by exp(`metric`) (N,1,H,W) where two land on one (softmax splatting, Niklaus & Liu 2020).
    Returns the splatted image and its coverage (N,1,H,W): the bilinear weight that landed on each pixel, 0 in the holes."""
    N, C, H, W = x.shape
    ys, xs = torch.meshgrid(torch.arange(H, dtype=x.dtype), torch.arange(W, dtype=x.dtype), indexing='ij')
    X, Y = xs + flow[:, 0], ys + flow[:, 1]                       # (N, H, W) where each pixel lands
    x0, y0 = X.floor(), Y.floor()
    e = (metric - metric.amax((2, 3), keepdim=True)).exp()[:, 0]  # shifted: exp never overflows
    num, den, cov = x.new_zeros(N, C, H * W), x.new_zeros(N, 1, H * W), x.new_zeros(N, 1, H * W)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - (X - xi).abs()) * (1 - (Y - yi).abs())
            ok = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H) & (w > 0)
            idx = (yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)).long().view(N, 1, -1)
            w = (w * ok).view(N, 1, -1)
            num.scatter_add_(2, idx.expand(-1, C, -1), x.view(N, C, -1) * w * e.view(N, 1, -1))
            den.scatter_add_(2, idx, w * e.view(N, 1, -1)); cov.scatter_add_(2, idx, w)
    out = num / den.clamp_min(1e-12)
    return out.view(N, C, H, W), cov.view(N, 1, H, W)


def estimated_corr(key:str, estimate, clips:int=None) -> dict:
    "Keyframe flows `estimate(a, b) -> (F_0->1, F_1->0)` `(1, 2, H, W)` each of the test clips of setting `key`, keyed as `true_corr`."
    st = setting(key, clips)
    ds = ToonClips(st['clips'], frames=8, size=st['size'], split='test', motion=st['motion'])
    table = {}
    for i in range(len(ds)):
        clip = ds[i][0]
        with torch.no_grad(): f01, f10 = estimate(clip[:1], clip[-1:])
        table[float(clip[0].double().sum())] = (f01[0].float(), f10[0].float())
    return table


def network_flows(net):
    "The flow network's keyframe flows: F_0->1 its flow to B at t = 0, F_1->0 its flow to A at t = 1."
    return lambda a, b: (net(a, b, torch.zeros(a.shape[0]))['flow'][:, 2:], net(a, b, torch.ones(a.shape[0]))['flow'][:, :2])


class Splatted:
    """No network: both keyframes splatted forward to time t along the keyframe flows of `table`, keyframe A by u F_0->1 and B
    by (1 - u) F_1->0, u the clock t or (`times`) each keyframe pixel's own time (`source_times`). The metric is brightness
    constancy, as in softmax splatting, -alpha |A - warp(B, F_0->1)| (and B's likewise, our alpha 20), so what is occluded
    yields; the two are blended by the clock with their coverage, the cross-fade of the keyframes filling what neither covers."""
    def __init__(self, table:dict, times:dict=None, alpha:float=20.0, m:int=8):
        self.table, self.times, self.alpha, self.m = table, times, alpha, m

    def __call__(self, a, b, t:float):
        f01, f10 = lookup(self.table, a)
        if self.times is None: ua = ub = torch.full((a.shape[0], 1, 1, 1), float(t))
        else:
            k = round(float(t) * (self.m - 1))
            ua, ub = (torch.stack([self.times[float(x.double().sum())][k][j] for x in a]) for j in (0, 1))
        za = -self.alpha * (a - warp(b, f01)).abs().mean(1, keepdim=True)
        zb = -self.alpha * (b - warp(a, f10)).abs().mean(1, keepdim=True)
        ia, ca = splat(a, ua * f01, za)
        ib, cb = splat(b, (1 - ub) * f10, zb)
        wa, wb = (1 - t) * ca.clamp(max=1), t * cb.clamp(max=1)
        fade = (1 - t) * a + t * b
        out = (wa * ia + wb * ib + 1e-3 * fade) / (wa + wb + 1e-3)
        return out.clamp(-1, 1)


def lookup(table:dict, a:torch.Tensor) -> tuple:
    "The true keyframe flows `(N, 2, H, W)` each for the first keyframes `a` `(N, 3, H, W)`."
    try: pairs = [table[float(x.double().sum())] for x in a]
    except KeyError: raise KeyError("corr_oracle: a keyframe that is not one of this setting's test clips") from None
    return tuple(torch.stack(f) for f in zip(*pairs))


class CorrTriplets(TimedTriplets):
    """TimedTriplets (told the clock or u(t) by `told`) whose `batch` also keeps the true keyframe flows of the clips it returns,
    as it returns them (mirrored, played backwards, halved), in `corr`: (F_0->1, F_1->0) `(N, 2, H, W)` each."""
    def batch(self, idx, ks, half:bool=False, flip=None, reverse=None) -> tuple:
        out = super().batch(idx, ks, half, flip, reverse)
        r = reverse if reverse is not None else torch.zeros(len(idx), dtype=torch.bool)
        first = [self.m - 1 if x else 0 for x in r.tolist()]          # the clip's frame that is the batch's keyframe a
        at_a = super().batch(idx, first, half, flip, reverse)[4]      # at a: its flows (to a = 0, to b = F_0->1)
        at_b = super().batch(idx, [self.m - 1 - k for k in first], half, flip, reverse)[4]
        self.corr = (at_a[:, 2:], at_b[:, :2])
        return out


class Started(nn.Module):
    """The flow network started from the true keyframe flows: `net(a, b, t, corr=source(a))`, `source` a table (the test clips,
    looked up by `lookup`) or a CorrTriplets (the batch it returned last, for training)."""
    def __init__(self, net:nn.Module, source):
        super().__init__()
        self.net, self.source = net, source

    @property
    def gamma(self): return self.net.gamma
    @gamma.setter
    def gamma(self, g): self.net.gamma = g

    def forward(self, a, b, t):
        return self.net(a, b, t, corr=lookup(self.source, a) if isinstance(self.source, dict) else self.source.corr)


class Linear(nn.Module):
    """No network: the flows to both keyframes by linear motion between the true keyframe flows (Super SloMo, eq. 4, the start
    `corr=` gives the network's blocks), at the clock t `(N,)` or at each pixel's time `(N, 1, H, W)`; the mask is the prior."""
    def __init__(self, table:dict, gamma:float=1.0):
        super().__init__()
        self.table, self.gamma = table, gamma

    def forward(self, a, b, t):
        f01, f10 = lookup(self.table, a)
        t = torch.as_tensor(t, dtype=a.dtype)
        t = t if t.dim() == 4 else t.reshape(-1, 1, 1, 1).expand(a.shape[0], -1, -1, -1)
        ft0, ft1 = -(1 - t) * t * f01 + t * t * f10, (1 - t) ** 2 * f01 - t * (1 - t) * f10
        mask = torch.sigmoid(self.gamma * torch.logit(1 - t, eps=1e-4)).expand(-1, 1, *a.shape[-2:])
        return {'flow': torch.cat([ft0, ft1], 1), 'mask': mask}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument('--clips', type=int, help="test clips per setting (default: the setting's own)")
    ap.add_argument('--fine-tune', type=int, default=0, metavar='STEPS',
                    help="also fine-tune the network started from the true keyframe flows, told the clock and told u(t) (default 0: no)")
    ap.add_argument('--train-clips', type=int, default=2000, help='training clips for --fine-tune (default 2000)')
    ap.add_argument('--matcher', help="also splat the keyframe flows of bench/global_match.py's matcher in this checkpoint")
    ap.add_argument('--splat-only', action='store_true', help='only the splatted rows: no network, nothing fine-tuned')
    ap.add_argument('--name', default='corr_oracle')
    ap.add_argument('--out', default='media/motion')
    ap.add_argument('--threads', type=int)
    a = ap.parse_args(argv)
    check_counts(ap, a, ('clips', 'threads', 'train_clips'), ('fine_tune',))
    if a.threads: torch.set_num_threads(a.threads)
    t0 = time.time()
    net = load_flow_net().float().eval()
    tuned, tuned_note = {}, ''
    if a.splat_only and a.fine_tune: ap.error('--splat-only fine-tunes nothing: drop --fine-tune')
    if a.fine_tune:                                                   # timing_told's fine-tunes (its controls), started from the true flows
        data = CorrTriplets(a.train_clips)
        for told in (False, True):
            torch.manual_seed(0)
            data.told = told
            started = Started(load_flow_net().float(), data)
            train_flow(started, data, a.fine_tune, lr=1e-4, seed=7)
            tuned[told] = started.net.eval()
        tuned_note = (f"; fine-tuned {a.fine_tune} steps on {a.train_clips} clips at 64 px started from their true keyframe flows, told "
                      f"the clock or u(t), as bench/timing_told.py fine-tunes its controls (same clips, batches, lr 1e-4, seed 7; "
                      f"media/motion/timing_told.md) ({time.time() - t0:.0f} s)")
    match = None
    if a.matcher:
        from global_match import GlobalMatch
        st = torch.load(a.matcher, map_location='cpu')
        match = GlobalMatch(c=st['c']); match.load_state_dict(st['model']); match.eval()
        matcher_note = f"; the matcher: {a.matcher}, {st['step']} steps{', balanced' if st.get('balance') else ''}"
    tables, rigid_off = [], []
    for key in a.settings:
        corr, rigid = true_corr(key, a.clips), rigid_corr(key, a.clips)
        off = torch.cat([(r - c).norm(dim=0).flatten() for k in corr for r, c in zip(rigid[k], corr[k])])
        rigid_off.append(f"{key}: {float(off[off > 0].mean() * 64 / max(corr[next(iter(corr))][0].shape[-2:])):.2f} px")
        nets = {}
        for told, when in () if a.splat_only else ((False, 'the clock t'), (True, "each pixel's u(t)")):
            nets[f'flow network, told {when} (gamma 6)'] = (net, told)
            nets[f'flow network started from the true keyframe flows, told {when} (gamma 6)'] = (Started(net, corr), told)
            nets[f'true keyframe flows alone, linear in {when} (gamma 6)'] = (Linear(corr), told)
            if told in tuned:
                nets[f'flow network fine-tuned {a.fine_tune} steps started from the true keyframe flows, told {when} (gamma 6)'] = (Started(tuned[told], corr), told)
        rows = score(key, nets, a.clips) if nets else None
        st = setting(key, a.clips)
        ds = ToonClips(st['clips'], frames=8, size=st['size'], split='test', motion=st['motion'])
        clips_t = torch.stack([ds[i][0] for i in range(len(ds))])
        times = source_times(key, a.clips)
        splats = {'true keyframe flows alone, splatted by the clock t': Splatted(corr),
                  "true keyframe flows alone, splatted by each pixel's u(t)": Splatted(corr, times),
                  'characters moved rigidly, splatted by the clock t': Splatted(rigid),
                  "characters moved rigidly, splatted by each pixel's u(t)": Splatted(rigid, times)}
        own = estimated_corr(key, network_flows(net), a.clips)                   # not privileged: the shipped network's own flows
        splats |= {"flow network's keyframe flows, splatted by the clock t": Splatted(own),
                   "flow network's keyframe flows, splatted by each pixel's u(t)": Splatted(own, times)}
        if match is not None:
            found = estimated_corr(key, match, a.clips)
            splats |= {f"matcher's keyframe flows, splatted by the clock t": Splatted(found),
                       f"matcher's keyframe flows, splatted by each pixel's u(t)": Splatted(found, times)}
        sp, _ = evaluate(splats, clips_t, batch_size=10, progress=False, device='cpu')
        sp = sp.drop(columns='ms_per_frame').reset_index(names='method').assign(setting=key, size=st['size'], motion=st['motion'], clips=len(ds))
        tables.append(pd.concat([rows, sp], ignore_index=True) if rows is not None else sp)
    table = pd.concat(tables, ignore_index=True)
    table = table.reindex(columns=['setting', 'size', 'motion', 'clips', 'method', 'psnr', 'ssim', 'line_cd', 'toon_fd', 'epe_chars_px', 'epe_rest_px'])
    write_table(table, a.out, a.name, digits=4, head=(
        f"The shipped flow network from rest, started from the true keyframe flows (chapter 02a's `corr=`), and the true keyframe "
        f"flows alone (linear motion and the mask prior, or splatted forward), told the clock t or each pixel's u(t); the hand-over "
        f"prior gamma 6, no refiner, on the test clips of each setting{tuned_note}{matcher_note if match is not None else ''}; {time.time() - t0:.0f} s in all\n"
        f"characters moved rigidly: every character's pixels by its centre's displacement, the scenery by its true motion; "
        f"these keyframe flows are off the true ones, on the pixels where they differ (the characters'), by {', '.join(rigid_off)} of a 64-px frame\n"
        f"machine: {machine()}"))

if __name__ == '__main__':
    main()
