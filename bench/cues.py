"""Can a network read the timing cues of two keyframes? A small CNN is trained to tell, from the first and last frame of a
one-character ToonClips scene, the character's ease curve (4 classes) and whether it hops; as a control, the number of hops
of a hopping character (1 or 2), which no keyframe shows. Scored on held-out test scenes, beside chance (the majority class).

Chapter 07 measures how large the cues are (under a pixel at 64 px for a moving end, 2-3 px for a hop's landing); chapter 06's
informed oracle is handed them exactly. This bench asks how much of them a network trained for minutes on this CPU recovers.

With --bend, a regression head reads the bend of the arc too (where the ease shows it: not in-out); mirrored training
pairs negate it. With --score, on the clips of every setting of bench/peers.py with the motion trained for, the network
reads the ease, the hop (and the bend) of every character (each character alone on its scene's background, rendered at the
network's size, as in training: the renderer's own split into characters), and the renderer draws the in-betweens from that
reading (`guess_with`), beside the same drawn from the true cues. Each row is marked with the in-betweener issue's targets,
as in bench/ceiling.py. The drawing is still an oracle's, every line and correspondence right: only the cues are read.

With --crop N, the network reads every character (in training and in --score) from an N x N crop of the full keyframes
around where it stands in each (`char_crops`): the other characters and props stay in the picture, and the renderer's
split is replaced by the character's position alone.

    python bench/cues.py [--train 6000] [--test 1000] [--size 64] [--motions 1.0 0.3] [--epochs 12] [--out media/ceiling] [--name cues] [--score]
    python bench/cues.py --size 128 --motions 1.0 --name cues_128
    python bench/cues.py --train 30000 --name cues_30k --score
    python bench/cues.py --train 30000 --name cues_bend --bend --score
    python bench/cues.py --train 30000 --motions 1.0 --crop 32 --name cues_crop --score
"""
import argparse, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from stillframes.data import ToonClips, render_scene, EASES, guess_with, blind_guess, informed_guess, char_pose

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_counts, machine, write_atomic

INOUT = EASES.index('inout')
BEND_SCALE = 4.0          # the bend head predicts 4 x bend (bends lie in [-0.5, 0.5])


def one_char(s:dict, ch:dict, size:int) -> torch.Tensor:
    "The network's input for character `ch` of scene `s`: its two keyframes (6, size, size) with it alone on the background."
    s1 = s | {'chars': [ch]}
    return torch.cat([render_scene(s1, 0.0, size), render_scene(s1, 1.0, size)])


def _crop(frame:torch.Tensor, cx:float, cy:float, n:int) -> torch.Tensor:
    "The (3, n, n) window of `frame` centred on pixel position (cx, cy), zero (mid-grey) outside the frame."
    f = F.pad(frame[None], (n, n, n, n))[0]
    i, j = round(cy - 0.5) + n - n // 2, round(cx - 0.5) + n - n // 2
    return f[:, i:i + n, j:j + n]


def char_crops(s:dict, size:int, n:int) -> torch.Tensor:
    """The network's input with `--crop n`, per character of scene `s`: the full keyframes at `size` px, every character
    and prop in them, cropped n x n around where the character stands in each (from the renderer: a location, not a
    drawing of it alone). (k, 6, n, n)."""
    f0, f1 = render_scene(s, 0.0, size), render_scene(s, 1.0, size)
    out = []
    for ch in s['chars']:
        (x0, y0), _, _ = char_pose(ch, 0.0)
        (x1, y1), _, _ = char_pose(ch, 1.0)          # the camera has panned by s['pan'] at t = 1 (its ease ends at 1)
        out.append(torch.cat([_crop(f0, x0 * size, y0 * size, n), _crop(f1, (x1 - s['pan']) * size, y1 * size, n)]))
    return torch.stack(out)


def inputs(s:dict, size:int, crop:int=0) -> torch.Tensor:
    "What the network sees of each character of `s`: alone on the background (`crop` 0), or `char_crops`."
    return char_crops(s, size, crop) if crop else torch.stack([one_char(s, ch, size) for ch in s['chars']])


def cue_set(n:int, split:str, size:int, motion:float, crop:int=0) -> tuple:
    """Keyframe pairs (m, 6, size, size) and their labels: ease, hops (0/1), hop count - 1 (-1 if none), and the bend of the
    arc (NaN where the in-out ease hides it). Without `crop`, the first character of each of `n` scenes, alone on its
    background (m = n); with `crop`, every character of the `n` scenes, as `char_crops` sees it."""
    ds = ToonClips(n, size=size, split=split, motion=motion)
    x, ease, hop, count, bend = [], [], [], [], []
    for i in range(n):
        s = ds.scene(i)
        chars = s['chars'] if crop else s['chars'][:1]
        x += list(char_crops(s, size, crop)) if crop else [one_char(s, chars[0], size)]
        for ch in chars:
            ease.append(ch['ease']); hop.append(int(ch['hop'] > 0)); count.append(ch['hops'] - 1 if ch['hop'] > 0 else -1)
            bend.append(float('nan') if ch['ease'] == INOUT else ch['bend'])
    return torch.stack(x), torch.tensor(ease), torch.tensor(hop), torch.tensor(count), torch.tensor(bend)


class CueNet(nn.Module):
    "Two keyframes stacked (N, 6, H, W) -> logits for the ease (4), hopping (2) and the hop count (2); with `bend`, then BEND_SCALE x the bend."
    def __init__(self, width:int=32, bend:bool=False):
        super().__init__()
        self.bend = bend
        c = [6, width, 2 * width, 2 * width, 4 * width]
        self.body = nn.Sequential(*[nn.Sequential(nn.Conv2d(i, o, 3, 1 if k == 0 else 2, 1), nn.BatchNorm2d(o), nn.ReLU())
                                    for k, (i, o) in enumerate(zip(c[:-1], c[1:]))])
        self.head = nn.Linear(c[-1], 4 + 2 + 2 + int(bend))

    def forward(self, x): return self.head(self.body(x).mean((2, 3)))


def loss_and_hits(net, x, ease, hop, count, bend):
    "The loss on a batch, and (ease right, hop right, hop count right, hopping characters, summed bend error, bends shown)."
    out = net(x)
    le, lh, lc = out[:, :4], out[:, 4:6], out[:, 6:8]
    on = count >= 0
    loss = F.cross_entropy(le, ease) + F.cross_entropy(lh, hop) + (F.cross_entropy(lc[on], count[on]) if on.any() else 0.0)
    hits = [(le.argmax(1) == ease).sum().item(), (lh.argmax(1) == hop).sum().item(), (lc[on].argmax(1) == count[on]).sum().item(), int(on.sum()), 0.0, 0]
    if net.bend:
        vis = ~bend.isnan()
        if vis.any(): loss = loss + F.smooth_l1_loss(out[vis, 8], BEND_SCALE * bend[vis])
        hits[4:] = (out[vis, 8] / BEND_SCALE - bend[vis]).abs().sum().item(), int(vis.sum())
    return loss, tuple(hits)


def score(net, size:int, key:str, peers_dir, n_clips:int=None) -> tuple:
    "Rows drawn from the network's reading (at `size` px) of setting `key`'s clips and from the truth, marked with the targets; and the reading's accuracy."
    from stillframes.eval import evaluate, crossfade, Replay
    from ceiling import targets, mark, XF
    from peers import setting
    st = setting(key, n_clips or None)
    ds = ToonClips(st['clips'], frames=8, size=st['size'], split='test', motion=st['motion'])
    ts = [k / 7 for k in range(1, 7)]
    draw = lambda s: torch.stack([render_scene(s, t, ds.hw, ds.style, ds.ss) for t in ts])
    names = ['blind guess', 'told the hop', 'told the ease and hop', 'read by the CNN (ease, hop)']
    if net.bend: names += ['informed guess', 'read by the CNN (ease, hop, bend)']
    rows, clips, hits, chars, bend_err, bends = {n: [] for n in names}, [], np.zeros(2), 0, 0.0, 0
    net.eval()
    for i in range(len(ds)):
        s = ds.scene(i); clips.append(ds[i][0])
        with torch.no_grad(): out = net(inputs(s, size, getattr(net, 'crop', 0)))
        read = [{'ease': int(e), 'hop': bool(h)} for e, h in zip(out[:, :4].argmax(1), out[:, 4:6].argmax(1))]
        if net.bend:                                       # a bend read where the ease read shows one
            with_bend = [r | ({'bend': float(b) / BEND_SCALE} if r['ease'] != INOUT else {}) for r, b in zip(read, out[:, 8])]
            for r, ch in zip(with_bend, s['chars']):
                if ch['ease'] != INOUT: bend_err += abs(r.get('bend', 0.0) - ch['bend']); bends += 1
        hits += [sum(r['ease'] == ch['ease'] for r, ch in zip(read, s['chars'])), sum(r['hop'] == (ch['hop'] > 0) for r, ch in zip(read, s['chars']))]
        chars += len(s['chars'])
        rows['blind guess'].append(draw(blind_guess(s)))
        rows['told the hop'].append(draw(informed_guess(s, ds.motion, ('hop',))))
        rows['told the ease and hop'].append(draw(informed_guess(s, ds.motion, ('ease', 'hop'))))
        rows['read by the CNN (ease, hop)'].append(draw(guess_with(s, read, ds.motion)))
        if net.bend:
            rows['informed guess'].append(draw(informed_guess(s, ds.motion)))
            rows['read by the CNN (ease, hop, bend)'].append(draw(guess_with(s, with_bend, ds.motion)))
    clips = torch.stack(clips)
    table, _ = evaluate({XF: crossfade} | {n: Replay(clips, torch.stack(v)) for n, v in rows.items()}, clips, batch_size=10, progress=False, device='cpu')
    table = table.drop(columns='ms_per_frame')
    f = Path(peers_dir) / f'results_{key}.csv'
    if f.is_file(): table = mark(table, bars := targets(pd.read_csv(f, index_col=0)))
    else: bars = None
    title = (f"({key}) {st['clips']} held-out ToonClips (test split), {st['size']} px, motion {st['motion']}: in-betweens drawn by the "
             f"renderer from the CNN's reading at {size} px of {chars} characters (ease right {hits[0] / chars:.3f}, hop right {hits[1] / chars:.3f}"
             + (f", bend off by {bend_err / max(bends, 1):.3f} where it shows" if net.bend else '') + ")\n"
             + (f"targets from {f}: PSNR >= {bars['psnr']:.2f} dB, SSIM >= {bars['ssim']:.4f}, toon FD <= {bars['toon_fd']:.3g}\n" if bars else f"no {f}: no targets\n"))
    return table, title


def run(n_train:int, n_test:int, size:int, motion:float, epochs:int, seed:int=0, bend:bool=False, crop:int=0) -> tuple:
    "Train a CueNet on `n_train` scenes; (its scores on `n_test` held-out scenes (their characters, with `crop`), the network)."
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    train, test = cue_set(n_train, 'train', size, motion, crop), cue_set(n_test, 'test', size, motion, crop)
    n_seen, n_held = len(train[0]), len(test[0])     # characters: one per scene without crop
    render_s = time.perf_counter() - t0
    net = CueNet(bend=bend)
    net.crop = crop
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    steps = epochs * (n_seen // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(n_seen, (64,), generator=g)
        xb, ys = train[0][idx], [y[idx] for y in train[1:]]
        if step % 2: xb, ys[-1] = xb.flip(-1), -ys[-1]                  # mirrored: the same ease and hops, the bend negated
        loss, _ = loss_and_hits(net, xb, *ys)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    train_s = time.perf_counter() - t0
    net.eval()
    hits = np.zeros(6)
    with torch.no_grad():
        for i in range(0, n_held, 250):
            hits += loss_and_hits(net, test[0][i:i + 250], *(y[i:i + 250] for y in test[1:]))[1]
    _, ease, hop, count, bend_true = test
    chance = lambda y: float(torch.bincount(y).max()) / len(y)
    row = {'motion': motion, 'size': size, 'train_scenes': n_train, 'test_scenes': n_test,
            'ease_acc': hits[0] / n_held, 'ease_chance': chance(ease), 'hops_acc': hits[1] / n_held, 'hops_chance': chance(hop),
            'hop_count_acc (control)': hits[2] / max(hits[3], 1), 'hop_count_chance': chance(count[count >= 0]),
            'render_s': round(render_s), 'train_s': round(train_s)}
    if crop: row |= {'crop': crop, 'train_chars': n_seen, 'test_chars': n_held}
    if bend:
        shown = bend_true[~bend_true.isnan()]
        row |= {'bend_mae': hits[4] / max(hits[5], 1), 'bend_mae_if_zero': float(shown.abs().mean())}
    return row, net


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--train', type=int, default=6000, help='training scenes (train split)')
    ap.add_argument('--test', type=int, default=1000, help='held-out scenes (test split)')
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--motions', type=float, nargs='+', default=[1.0, 0.3])
    ap.add_argument('--epochs', type=int, default=12)
    ap.add_argument('--out', default='media/ceiling')
    ap.add_argument('--name', default='cues', help='writes OUT/NAME.csv and OUT/NAME.md (default cues)')
    ap.add_argument('--threads', type=int)
    ap.add_argument('--bend', action='store_true', help='also read the bend of the arc (a regression head) and, with --score, draw from it')
    ap.add_argument('--crop', type=int, default=0, help='read each character from an N x N crop of the full keyframes around it (char_crops), not alone on its background')
    ap.add_argument('--score', action='store_true', help="draw in-betweens from the network's reading on the clips of the bench/peers.py settings with this motion")
    ap.add_argument('--clips', type=int, help="clips scored by --score (default: the setting's, 100 or 50)")
    ap.add_argument('--peers', default='media/peers', help='folder with bench/peers.py results_<setting>.csv, for the targets of --score')
    a = ap.parse_args(argv)
    check_counts(ap, a, ('train', 'test', 'epochs', 'threads', 'clips'))
    if a.train < 64: ap.error('--train must be >= 64 (one batch)')
    if a.crop and not 8 <= a.crop <= a.size: ap.error(f'--crop must be between 8 and --size ({a.size}), or 0 for none')
    if a.threads: torch.set_num_threads(a.threads)
    from peers import SETTINGS
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    rows, scored = [], ''
    for m in a.motions:
        row, net = run(a.train, a.test, a.size, m, a.epochs, bend=a.bend, crop=a.crop)
        rows.append(row)
        keys = [k for k, st in SETTINGS.items() if st['motion'] == m] if a.score else []
        if a.score and not keys: print(f"--score: no bench/peers.py setting has motion {m}; nothing scored", flush=True)
        for key in keys:
            t, title = score(net, a.size, key, a.peers, a.clips)
            scored += f"\n{title}\n{t.round(4).to_markdown(floatfmt='.4g')}\n"
            write_atomic(out / f'{a.name}_{key}.csv', t.to_csv())
    table = pd.DataFrame(rows)
    md = (f"Reading the timing cues of two keyframes: a {sum(p.numel() for p in CueNet(bend=a.bend).parameters()):,}-parameter CNN, "
          f"{a.epochs} epochs, {a.train} " + (f"ToonClips scenes at {a.size} px, every character read from a {a.crop}x{a.crop} crop of the full keyframes around it"
                                             if a.crop else f"one-character ToonClips scenes at {a.size} px") + f"\nmachine: {machine()}\n\n"
          f"{table.round(3).to_markdown(index=False)}\n{scored}")
    write_atomic(out / f'{a.name}.csv', table.to_csv(index=False)); write_atomic(out / f'{a.name}.md', md)
    print(md)


if __name__ == '__main__':
    main()
