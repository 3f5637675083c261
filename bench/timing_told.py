"""What is the ease worth to the flow network? The shipped TimeFlowNet handed each pixel's own timing, not the clock.

A ToonClips character moves along its path at its own ease, u = ease(t) (linear, in, out or in-out: chapter 07), and the
camera pans with the in-out ease; the keyframes show the ease only through squash and stretch (bench/cues.py reads it
for 72% of held-out characters at best, chance 26%). The flow network is given the clock t and must guess. Here it is told:
its time input becomes a time map, u(t) of the character (or the background) that covers each pixel of the in-between,
read off the renderer's layers at t (privileged, as the flow supervision is). Nothing is retrained: chapter 02a's
TimeFlowNet takes a time per pixel as it takes one per frame, and scales each pixel's flows by it. The hop is not told,
nor the bend or the sway, which a time cannot carry; and on a character in a scene that pans, the motion on screen mixes
the character's u with the camera's in-out ease, of which the map gives only the first.

With `--fine-tune STEPS`, the network is then fine-tuned twice and scored again (chapter 02a's `train_flow` on
`--train-clips` ToonClips of seed 1 at 64 px, lr 1e-4 decayed linearly, the batches of bench/hop_told.py): told the
clock, the control (as hop_told's `hop_plain` run), and told, its batches carrying each pixel's u(t) for the clock.

Every row warps the keyframes with the shipped hand-over prior (gamma 6, no refiner) and is scored as bench/peers.py
scores its methods, on the same test clips. Writes NAME.csv/.md (default timing_told).

    python bench/timing_told.py [--settings a b c] [--clips N] [--fine-tune STEPS] [--train-clips N] [--name N] [--out media/motion] [--threads N]
"""
import argparse, sys, time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from stillframes.data import ToonClips, render_scene, ease, LAYERS
from stillframes.eval import evaluate
from stillframes.motion import FlowTriplets, interpolate_frames, load_flow_net, train_flow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_counts, machine, write_atomic
from peers import SETTINGS, setting


def timing_map(s:dict, t:float, ds:ToonClips) -> tuple:
    "The time `(1, H, W)` of each pixel of scene `s` at clock `t`, its character's `ease(t)`, the camera's (in-out) elsewhere; and where the characters are `(1, H, W)`."
    _, lay = render_scene(s, t, ds.hw, ds.style, ds.ss, layers=True)
    u = torch.full(lay.shape, ease(t, 3))
    for j, ch in enumerate(s['chars']): u[torch.from_numpy(lay == len(LAYERS) + j)] = ease(t, ch['ease'])
    return u[None], torch.from_numpy(lay >= len(LAYERS))[None]


def flow_errors(net, told:bool, clips:torch.Tensor, truth:list, maps:list) -> dict:
    """Mean end-point error, in pixels of a 64-px frame, of `net`'s flows to both keyframes against the true ones `truth[i]`
    (flow (m-2, 4, H, W), visible (m-2, 2, H, W)), over the visible pixels of the characters and of the rest."""
    m, (H, W) = clips.shape[1], clips.shape[-2:]
    sums = {'chars': [0.0, 0.0], 'rest': [0.0, 0.0]}
    for i, (flow, vis) in enumerate(truth):
        u = torch.stack([maps[i][k][0] for k in range(1, m - 1)])
        t = u if told else torch.arange(1, m - 1) / (m - 1)
        with torch.no_grad(): f = net(clips[i, :1].expand(m - 2, -1, -1, -1), clips[i, -1:].expand(m - 2, -1, -1, -1), t)['flow']
        e = (f - flow.float()).view(m - 2, 2, 2, H, W).norm(dim=2) * (64 / max(H, W))
        chars = torch.stack([maps[i][k][1] for k in range(1, m - 1)])
        for name, region in (('chars', chars), ('rest', ~chars)):
            w = vis & region
            sums[name][0] += float((e * w).sum()); sums[name][1] += float(w.sum())
    return {f'epe_{k}_px': a / max(n, 1) for k, (a, n) in sums.items()}


class TimedTriplets(FlowTriplets):
    "FlowTriplets whose batches carry each pixel's time u(t) `(N, 1, H, W)` where FlowTriplets gives the clock t."
    def __init__(self, n:int, size:int=64, seed:int=1, motions:tuple=(0.5, 1.0, 1.5)):
        super().__init__(n, size, seed=seed, motions=motions, progress=False)
        self.told = True                                              # False: the clock, as FlowTriplets gives it
        dss = [ToonClips(n, frames=self.m, size=size, split='train', seed=seed, motion=m) for m in motions]
        self.times = [torch.stack([timing_map(dss[i % len(dss)].scene(i), k / (self.m - 1), dss[i % len(dss)])[0]
                                   for k in range(self.m)]).half() for i in range(n)]

    def batch(self, idx, ks, half:bool=False, flip=None, reverse=None) -> tuple:
        a, b, x, t, flow, vis = super().batch(idx, ks, half, flip, reverse)
        if not self.told: return a, b, x, t, flow, vis
        u = torch.stack([self.times[i][k].float() for i, k in zip(idx, ks)])
        if reverse is not None: u = torch.where(reverse.view(-1, 1, 1, 1), 1 - u, u)       # played backwards: u -> 1 - u
        if flip is not None: u = torch.where(flip.view(-1, 1, 1, 1), u.flip(-1), u)
        return a, b, x, (F.avg_pool2d(u, 2) if half else u), flow, vis


def run(key:str, nets:dict, clips:int=None, gamma:float=6.0) -> pd.DataFrame:
    """Rows of setting `key` (`clips` overrides its clip count) for `nets` (name -> (flow network, told the timing?)), each
    network's mask prior set to `gamma`: the shipped model's hand-over (chapter 03a), since a network trained at gamma 1
    whose prior is raised to gamma draws its mask as the hand-over sharpens it."""
    for net, _ in nets.values(): net.gamma = gamma                 # the mask only: the flows do not read the prior
    st = setting(key, clips)
    ds = ToonClips(st['clips'], frames=8, size=st['size'], split='test', motion=st['motion'], flow=True)
    m = ds.frames
    data = [ds[i] for i in range(len(ds))]
    clips_t = torch.stack([c for c, _ in data])
    truth = [(at['flow'][1:-1].flatten(1, 2).half(), at['visible'][1:-1]) for _, at in data]
    per_clip = [{k: timing_map(ds.scene(i), k / (m - 1), ds) for k in range(1, m - 1)} for i in range(len(ds))]
    maps = {float(clips_t[i, 0].double().sum()): {k: u for k, (u, _) in per_clip[i].items()} for i in range(len(ds))}
    if len(maps) != len(ds): raise RuntimeError("timing_told: two test clips share a first keyframe's pixel sum")
    def method(net, is_told):
        def draw(x, y, t):
            if not is_told: return interpolate_frames(net, x, y, torch.full((x.shape[0],), float(t)))
            k = round(float(t) * (m - 1))
            return interpolate_frames(net, x, y, torch.stack([maps[float(a.double().sum())][k] for a in x]))
        return draw
    scores, _ = evaluate({name: method(*v) for name, v in nets.items()}, clips_t, batch_size=10, progress=False, device='cpu')
    epe = pd.DataFrame({name: flow_errors(net, is_told, clips_t, truth, per_clip) for name, (net, is_told) in nets.items()}).T
    return (scores.drop(columns='ms_per_frame').join(epe).reset_index(names='method')
            .assign(setting=key, size=st['size'], motion=st['motion'], clips=len(ds)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument('--clips', type=int, help="test clips per setting (default: the setting's own)")
    ap.add_argument('--fine-tune', type=int, default=0, metavar='STEPS', help='also fine-tune the network told the timing (default 0: no)')
    ap.add_argument('--train-clips', type=int, default=2000, help='training clips for --fine-tune (default 2000)')
    ap.add_argument('--name', default='timing_told')
    ap.add_argument('--out', default='media/motion')
    ap.add_argument('--threads', type=int)
    a = ap.parse_args(argv)
    check_counts(ap, a, ('clips', 'threads', 'train_clips'), ('fine_tune',))
    if a.threads: torch.set_num_threads(a.threads)
    t0 = time.time()
    shipped = load_flow_net().float().eval()
    nets = {'flow network, told the clock t (gamma 6)': (shipped, False),
            "flow network, told each pixel's u(t) (gamma 6)": (shipped, True)}
    tuned = ''
    if a.fine_tune:
        data = TimedTriplets(a.train_clips)
        for told in (False, True):                                    # the control first: the same fine-tune told the clock
            torch.manual_seed(0)
            net, data.told = load_flow_net().float(), told
            train_flow(net, data, a.fine_tune, lr=1e-4, seed=7)
            what = "told each pixel's u(t)" if told else 'told the clock t'
            nets[f"flow network fine-tuned {a.fine_tune} steps {what}, {what} (gamma 6)"] = (net.eval(), told)
        tuned = f"; fine-tuned {a.fine_tune} steps on {a.train_clips} clips at 64 px, told the clock or u(t) ({time.time() - t0:.0f} s)"
    table = pd.concat([run(k, nets, a.clips) for k in a.settings], ignore_index=True)
    cols = ['setting', 'size', 'motion', 'clips', 'method', 'psnr', 'ssim', 'line_cd', 'toon_fd', 'epe_chars_px', 'epe_rest_px']
    table = table[cols]
    md = (f"The shipped flow network told the clock t, or each pixel's own timing u(t) (read off the renderer's layers), "
          f"warped with the hand-over prior gamma 6 and no refiner, on the test clips of each setting{tuned}; {time.time() - t0:.0f} s in all\n"
          f"machine: {machine()}\n\n{table.round(4).to_markdown(index=False)}\n")
    print(md)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / f'{a.name}.csv', table.to_csv(index=False))
    write_atomic(out / f'{a.name}.md', md)


if __name__ == '__main__':
    main()
