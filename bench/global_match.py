"""Can a global matcher find the characters that the flow network loses? Keyframe correspondence by all-pairs matching.

On the test clips of setting (a), the shipped flow network's error on character pixels grows from the keyframe it warps:
at t = 1 (the flow from keyframe B back to A, pure correspondence) it is 9.9 px of a 64-px frame, block matching 10.6
px, and zero flow 16.5 px (the characters' mean displacement). Its blocks look a few cells around their current guess
(the coarsest +-12 cells of a quarter-size grid, +-48 px at 64 px) and then update it by regression. Here a small
matcher after GMFlow (Xu et al. 2022) looks everywhere: features of each keyframe (a few dilated convolutions on colour
and position, at half size), the correlation of every position of A with every position of B, a softmax over B, and the
expected position in B minus the own position gives F_0->1 (and F_1->0 from the softmax over A). It is trained with L1
to the true keyframe flows of ToonClips (privileged, as the flow network's supervision is) on `--train-clips` clips of
seed 1 at 64 px, for `--steps` steps; with `--balance`, the mean over the characters' pixels (read off the renderer's
layers) and the mean over the rest weigh the same, where otherwise every visible pixel does and the background outweighs
the characters.

It is then measured three ways on the test clips of each setting:
- correspondence: end-point error of F_1->0 on the visible pixels of the characters and of the rest, beside the shipped
  network at t = 1, block matching and zero flow;
- as the start of the shipped flow network (chapter 02a's `corr=`: its blocks start from linear motion between the
  matcher's flows instead of from rest), zero-shot and after `--fine-tune` steps with the matcher frozen; the same
  fine-tune without the matcher is the control (the batches of bench/timing_told.py, lr 1e-4, seed 7);
- every row warps with the shipped hand-over prior (gamma 6, no refiner) and is scored as bench/peers.py scores.

Measured (media/motion/global_match.md, 3000 steps, 2060 s with the rendering): the matcher is no better than zero flow anywhere, 16.46 px
on character pixels in (a) against zero flow's 16.50 (rest 1.44 px against 1.32), so starting the flow network from it changes nothing
(fine-tuned 19.52 dB / FD 21.6 against the control's 19.56 / 20.2). Its loss, over all visible pixels, is mostly background.
With `--balance` (media/motion/global_match_balanced.md; the matcher trained in a first run with `--settings a --fine-tune 0`,
media/motion/global_match_balanced_a.md, 1451 s with the rendering, and resumed at its last step by the run that wrote the
table) it finds the characters of (a) better than the flow network does, 7.98 px against 9.91, but not those of (b) (3.49 against 3.22) or (c) (10.40 against 10.20), and it is
2.7 px off on the rest (flow network 0.77). Started from it, the flow network breaks zero-shot (16.78 dB in (a)) and
fine-tuned does not recover the control: 19.51 dB / FD 23.2 against 19.56 / 20.2 in (a), 19.45 / 15.5 against 19.74 / 8.8 in (c).
The zero-shot break is mostly the network's: started from the true keyframe flows it breaks too (bench/corr_oracle.py, 17.41 dB in (a)).

The matcher is trained here, for this measurement; it is not part of the shipped model. Writes NAME.csv/.md
(default global_match) and the matcher's checkpoint `--ckpt` (resumed from when present, written atomically).

    python bench/global_match.py [--steps N] [--train-clips N] [--balance] [--fine-tune STEPS] [--settings a b c] [--clips N] [--ckpt PATH] [--name N] [--out media/motion] [--threads N]
"""
import argparse, math, sys, time
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from stillframes.data import ToonClips
from stillframes.motion import FlowTriplets, block_match, load_flow_net, resize_flow, train_flow
from stillframes.utils import atomic_save

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_counts, machine, write_atomic
from peers import SETTINGS, setting
from timing_told import run as score, timing_map


class GlobalMatch(nn.Module):
    "Keyframes (N,3,H,W) -> (F_0->1, F_1->0) (N,2,H,W) in pixels: every position of one keyframe matched against every position of the other."
    def __init__(self, c:int=48, size:int=64):
        super().__init__()
        conv = lambda i, o, s=1, d=1: nn.Sequential(nn.Conv2d(i, o, 3, s, d, dilation=d), nn.PReLU(o))
        self.enc = nn.Sequential(conv(5, c, 2), conv(c, c), conv(c, c, d=2), conv(c, c, d=4), conv(c, c, d=8), nn.Conv2d(c, c, 1))
        self.log_temp = nn.Parameter(torch.zeros(()))              # learned sharpness of the softmax
        self.c, self.size = c, size

    def features(self, x:torch.Tensor) -> torch.Tensor:
        N, _, h, w = x.shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device), torch.linspace(-1, 1, w, device=x.device), indexing='ij')
        return self.enc(torch.cat([x, torch.stack([xs, ys]).to(x).expand(N, -1, -1, -1)], 1))

    def forward(self, a:torch.Tensor, b:torch.Tensor) -> tuple:
        N, _, H, W = a.shape
        s = min(1.0, self.size / max(H, W))
        h, w = max(4, round(H * s)), max(4, round(W * s))
        if (h, w) != (H, W): a, b = (F.interpolate(x, size=(h, w), mode='bilinear', antialias=True, align_corners=False) for x in (a, b))
        fa, fb = self.features(a), self.features(b)                # (N, c, h', w')
        hf, wf = fa.shape[-2:]
        corr = torch.einsum('ncp,ncq->npq', fa.flatten(2), fb.flatten(2)) * (self.log_temp.exp() / math.sqrt(self.c))
        ys, xs = torch.meshgrid(torch.arange(hf, device=a.device), torch.arange(wf, device=a.device), indexing='ij')
        grid = torch.stack([xs, ys], -1).reshape(1, -1, 2).to(corr)  # (1, P, 2): x, y of each position
        f01 = corr.softmax(2) @ grid - grid                        # expected position in B of each position of A
        f10 = corr.softmax(1).transpose(1, 2) @ grid - grid
        to_img = lambda f: resize_flow(f.transpose(1, 2).reshape(N, 2, hf, wf), (H, W))
        return to_img(f01), to_img(f10)


class Matched(nn.Module):
    "The flow network started from a frozen matcher's keyframe flows: `net(a, b, t, corr=match(a, b))`."
    def __init__(self, net:nn.Module, match:GlobalMatch):
        super().__init__()
        self.net, self.match = net, match.requires_grad_(False)

    @property
    def gamma(self): return self.net.gamma
    @gamma.setter
    def gamma(self, g): self.net.gamma = g

    def forward(self, a, b, t):
        with torch.no_grad(): corr = self.match(a, b)
        return self.net(a, b, t, corr=corr)


class CharTriplets(FlowTriplets):
    "FlowTriplets that also know where the characters are on each keyframe: `chars[i]` `(2, H, W)`, read off the renderer's layers."
    def __init__(self, n:int, size:int=64, seed:int=1, motions:tuple=(0.5, 1.0, 1.5), progress:bool=True):
        super().__init__(n, size, seed=seed, motions=motions, progress=progress)
        dss = [ToonClips(n, frames=self.m, size=size, split='train', seed=seed, motion=m) for m in motions]
        self.chars = [torch.cat([timing_map(dss[i % len(dss)].scene(i), t, dss[i % len(dss)])[1] for t in (0.0, 1.0)]) for i in range(n)]

    def char_masks(self, idx, flip=None) -> torch.Tensor:
        "Character masks `(N, 2, H, W)` of keyframes A and B of clips `idx`, mirrored where `flip`, as `batch` mirrors the clips."
        c = torch.stack([self.chars[i] for i in idx])
        return c if flip is None else torch.where(flip.view(-1, 1, 1, 1), c.flip(-1), c)


def train_match(match:GlobalMatch, data:FlowTriplets, steps:int, ckpt:Path=None, batch_size:int=16, lr:float=3e-4, every:int=250,
                balance:bool=False) -> list:
    """L1 to the true keyframe flows on the pixels the other keyframe sees, both directions, mirrored at random; resumes from `ckpt`.
    `balance` (data a CharTriplets): the mean over the characters' pixels and the mean over the rest weigh the same, where
    otherwise every pixel weighs the same and the background, most of the frame, outweighs the characters. Returns the loss curve."""
    if balance and not hasattr(data, 'char_masks'): raise TypeError("train_match: balance=True needs a CharTriplets, which knows where the characters are")
    opt = torch.optim.Adam(match.parameters(), lr=lr)
    start, curve = 0, []
    if ckpt is not None and ckpt.is_file():
        st = torch.load(ckpt, map_location='cpu')
        if (st['steps'], st['c'], st['n'], st.get('balance', False)) != (steps, match.c, len(data), balance):
            raise ValueError(f"{ckpt}: a matcher for {st['steps']} steps, c={st['c']}, {st['n']} clips, balance={st.get('balance', False)}; "
                             f"asked {steps}, c={match.c}, {len(data)} clips, balance={balance}")
        match.load_state_dict(st['model']); opt.load_state_dict(st['opt']); start, curve = st['step'], st['curve']
    save = lambda step: ckpt is not None and atomic_save({'model': match.state_dict(), 'opt': opt.state_dict(), 'step': step,
                                                          'steps': steps, 'c': match.c, 'n': len(data), 'balance': balance, 'curve': curve}, ckpt)
    match.train()
    bar = tqdm(range(start, steps), desc='matcher', initial=start, total=steps)
    for step in bar:
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(len(data), (batch_size,), generator=g).tolist()
        flip = torch.rand(batch_size, generator=g) < 0.5
        a, b, _, _, at_a, vis_a = data.batch(idx, [0] * batch_size, flip=flip)           # at keyframe A: its flow to B is F_0->1
        _, _, _, _, at_b, vis_b = data.batch(idx, [data.m - 1] * batch_size, flip=flip)  # at keyframe B: its flow to A is F_1->0
        f01, f10, v01, v10 = at_a[:, 2:], at_b[:, :2], vis_a[:, 1:].float(), vis_b[:, :1].float()
        for grp in opt.param_groups: grp['lr'] = lr * (1 - step / steps)
        p01, p10 = match(a, b)
        chars = data.char_masks(idx, flip).float() if balance else None  # the pixels whose flow is asked: A's for F_0->1, B's for F_1->0
        terms = []
        for k, (p, y, v) in enumerate(((p01, f01, v01), (p10, f10, v10))):
            e = (p - y).abs().sum(1, keepdim=True)
            regions = (v * chars[:, k:k + 1], v * (1 - chars[:, k:k + 1])) if balance else (v,)
            terms.append(sum((e * w).sum() / w.sum().clamp_min(1) for w in regions) / len(regions))
        loss = sum(terms) / 2
        if not math.isfinite(loss.item()): raise FloatingPointError(f"global_match: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        curve.append(loss.item()); bar.set_postfix(loss=f'{loss.item():.2f}')
        if (step + 1) % every == 0 or step + 1 == steps: save(step + 1)
    return curve


def correspondence(key:str, methods:dict, clips:int=None) -> pd.DataFrame:
    "End-point error (px of a 64-px frame) of each method's F_1->0 `(a, b) -> (N,2,H,W)` on the test clips of setting `key`, on the visible character pixels and the rest."
    st = setting(key, clips)
    ds = ToonClips(st['clips'], frames=8, size=st['size'], split='test', motion=st['motion'], flow=True)
    rows = {name: {'chars': [0.0, 0.0], 'rest': [0.0, 0.0]} for name in methods}
    for i in range(len(ds)):
        clip, at = ds[i]
        truth, vis = at['flow'][-1][0].float()[None], at['visible'][-1][0][None, None]
        chars = timing_map(ds.scene(i), 1.0, ds)[1][None]
        for name, f in methods.items():
            with torch.no_grad(): e = (f(clip[:1], clip[-1:]) - truth).norm(dim=1, keepdim=True) * (64 / max(clip.shape[-2:]))
            for region, r in (('chars', chars), ('rest', ~chars)):
                w = vis & r
                rows[name][region][0] += float((e * w).sum()); rows[name][region][1] += float(w.sum())
    return pd.DataFrame([{'setting': key, 'method': name, **{f'epe_{k}_px': s / max(n, 1) for k, (s, n) in r.items()}} for name, r in rows.items()])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--steps', type=int, default=3000, help='matcher training steps (default 3000)')
    ap.add_argument('--train-clips', type=int, default=2000)
    ap.add_argument('--fine-tune', type=int, default=1500, metavar='STEPS', help='fine-tune the flow network on the matcher, and the control (0: no)')
    ap.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument('--clips', type=int, help="test clips per setting (default: the setting's own)")
    ap.add_argument('--ckpt', default='runs/global_match.pt', help='matcher checkpoint, resumed from when present')
    ap.add_argument('--name', default='global_match')
    ap.add_argument('--out', default='media/motion')
    ap.add_argument('--balance', action='store_true', help="the characters' pixels and the rest weigh the same in the matcher's loss")
    ap.add_argument('--threads', type=int)
    a = ap.parse_args(argv)
    check_counts(ap, a, ('steps', 'train_clips', 'clips', 'threads'), ('fine_tune',))
    if a.threads: torch.set_num_threads(a.threads)
    t0 = time.time()
    data = (CharTriplets if a.balance else FlowTriplets)(a.train_clips, 64, seed=1)
    torch.manual_seed(0)
    match = GlobalMatch()
    resumed = torch.load(a.ckpt, map_location='cpu')['step'] if Path(a.ckpt).is_file() else 0
    curve = train_match(match, data, a.steps, Path(a.ckpt), balance=a.balance)
    match.eval()
    t_match = time.time() - t0
    shipped = load_flow_net().float().eval()
    def net_at_1(x, y):
        return shipped(x, y, torch.ones(x.shape[0]))['flow'][:, :2]
    corr_methods = {'global matcher': lambda x, y: match(x, y)[1], 'flow network at t = 1': net_at_1,
                    'block matching': lambda x, y: resize_flow(block_match(x, y), x.shape[-2:]),
                    'zero flow': lambda x, y: torch.zeros_like(x[:, :2])}
    corr = pd.concat([correspondence(k, corr_methods, a.clips) for k in a.settings], ignore_index=True)
    nets = {'flow network (gamma 6)': (shipped, False), 'flow network started from the matcher, zero-shot (gamma 6)': (Matched(shipped, match).eval(), False)}
    if a.fine_tune:
        for with_match in (False, True):                              # the control first: the same fine-tune without the matcher
            torch.manual_seed(0)
            net = load_flow_net().float()
            net = Matched(net, match) if with_match else net
            train_flow(net, data, a.fine_tune, lr=1e-4, seed=7)
            nets[f"flow network fine-tuned {a.fine_tune} steps{' started from the matcher' if with_match else ''} (gamma 6)"] = (net.eval(), False)
    table = pd.concat([score(k, nets, a.clips) for k in a.settings], ignore_index=True)
    table = table[['setting', 'size', 'motion', 'clips', 'method', 'psnr', 'ssim', 'line_cd', 'toon_fd', 'epe_chars_px', 'epe_rest_px']]
    md = (f"A global matcher (GMFlow-style, {sum(p.numel() for p in match.parameters())} parameters) trained {a.steps} steps on "
          f"{a.train_clips} ToonClips of seed 1 at 64 px (L1 to the true keyframe flows{', the characters and the rest weighed alike' if a.balance else ''}, last 100 steps {sum(curve[-100:]) / len(curve[-100:]):.2f} px; "
          f"{t_match:.0f} s with the rendering{f', resumed at step {resumed}' if resumed else ''}), measured on the test clips of each setting; {time.time() - t0:.0f} s in all\n"
          f"machine: {machine()}\n\n"
          f"Keyframe correspondence, F_1->0: end-point error in px of a 64-px frame on the visible pixels\n\n{corr.round(3).to_markdown(index=False)}\n\n"
          f"In-betweens (gamma 6, no refiner; epe: both flows at every in-between); fine-tunes {a.fine_tune} steps, lr 1e-4, "
          f"the matcher frozen\n\n{table.round(4).to_markdown(index=False)}\n")
    print(md)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / f'{a.name}.csv', pd.concat([corr.assign(kind='correspondence'), table.assign(kind='in-between')]).to_csv(index=False))
    write_atomic(out / f'{a.name}.md', md)


if __name__ == '__main__':
    main()
