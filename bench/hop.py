"""Does the motion draw the hop? Where the shipped model's flow puts each hopping character, against where it is.

A ToonClips character that hops rises by up to `hop` view heights above its path (once or twice, HOP_RANGE), and the
keyframes show that it hops: it is squashed at both (chapter 07; bench/cues.py reads it from them in 99.9% of held-out
scenes). For every in-between of every hopping character of the test clips: its true lift, (y_t - y_t without the hop) in
pixels (negative: up), and the lift the model's motion draws, the true lift plus the mean of (true - predicted) vertical flow
over the character's pixels at t that the keyframe sees (both flows, to the first and to the last keyframe): where the flow
fetches the character from, relative to where it truly is. `share` is the least-squares slope of the drawn lift on the
true one (1: the hop is drawn; 0: the character moves as if it did not hop). Characters that do not hop are measured the
same way (true lift 0): a drawn lift there is a hop drawn where there is none. Writes hop.csv/.md.

    python bench/hop.py [--settings a c] [--clips N] [--model FILE] [--out media/motion] [--threads N]
"""
import argparse, sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stillframes.data import ToonClips, render_scene, scene_pose, LAYERS
from stillframes.model import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_counts, machine, write_atomic
from peers import SETTINGS, setting


def lifts(motion, ds:ToonClips) -> pd.DataFrame:
    "One row per (clip, character, in-between): hops (0: it does not hop), t, true lift and drawn lift in pixels."
    m, (H, W) = ds.frames, ds.hw
    t = torch.arange(1, m - 1) / (m - 1)
    rows = []
    for i in range(len(ds)):
        s = ds.scene(i)
        clip, at = ds[i]
        with torch.no_grad(): flow = motion(clip[:1].expand(m - 2, -1, -1, -1), clip[-1:].expand(m - 2, -1, -1, -1), t)['flow']
        for k in range(1, m - 1):
            _, lay = render_scene(s, k / (m - 1), ds.hw, ds.style, ds.ss, layers=True)
            for j, ch in enumerate(s['chars']):
                (_, y), _, _ = scene_pose(ch, k / (m - 1))
                (_, y0), _, _ = scene_pose(dict(ch, hop=0.0), k / (m - 1))
                on = torch.from_numpy(lay == len(LAYERS) + j)
                d = [(at['flow'][k][e][1] - flow[k - 1][2 * e + 1])[on & at['visible'][k][e]] for e in (0, 1)]
                d = torch.cat(d)
                if d.numel() < 4: continue
                true = (y - y0) * H
                rows.append(dict(clip=i, char=j, hops=ch['hops'] if ch['hop'] > 0 else 0, t=k / (m - 1), true_lift=true, drawn_lift=true + d.mean().item()))
    return pd.DataFrame(rows, columns=['clip', 'char', 'hops', 't', 'true_lift', 'drawn_lift'])


def summary(df:pd.DataFrame) -> pd.DataFrame:
    "Per number of hops and overall: frames, mean true and drawn lift, and the share of the lift drawn."
    out = []
    groups = [(f'{h} hop{"s" if h > 1 else ""}', df[df.hops == h]) for h in (1, 2)] + [('all hopping', df[df.hops > 0]), ('not hopping', df[df.hops == 0])]
    for name, g in groups:
        if not len(g): continue
        x, y = g.true_lift.to_numpy(), g.drawn_lift.to_numpy()
        share = float((x * y).sum() / (x * x).sum()) if (x != 0).any() else float('nan')
        out.append(dict(characters=name, frames=len(g), true_lift_px=x.mean(), drawn_lift_px=y.mean(), share=share))
    return pd.DataFrame(out, columns=['characters', 'frames', 'true_lift_px', 'drawn_lift_px', 'share'])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--settings', nargs='+', default=['a', 'c'], choices=list(SETTINGS))
    ap.add_argument('--clips', type=int, help='clips per setting (default: those of bench/peers.py, 100, 100, 50)')
    ap.add_argument('--model', default=None, help='model file (default: the shipped model)')
    ap.add_argument('--out', default='media/motion')
    ap.add_argument('--threads', type=int)
    a = ap.parse_args(argv)
    check_counts(ap, a, ('clips', 'threads'))
    if a.threads: torch.set_num_threads(a.threads)
    motion = load_model(a.model).motion.float().eval()
    tables, mds = [], []
    for key in a.settings:
        s = setting(key, a.clips)
        ds = ToonClips(s['clips'], frames=8, size=s['size'], split='test', motion=s['motion'], flow=True)
        t = summary(lifts(motion, ds))
        t.insert(0, 'setting', key)
        tables.append(t)
        mds.append(f"({key}) the characters of {s['clips']} held-out ToonClips (test split), {s['size']} px, in-betweens 1..6 of 8, "
                   f"motion {s['motion']}; lifts in pixels, negative is up\n\n{t.round(3).to_markdown(index=False)}\n")
        print(mds[-1], flush=True)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    md = f"the motion of {a.model or 'the shipped model'}\nmachine: {machine()}\n\n" + '\n'.join(mds)
    write_atomic(out / 'hop.csv', pd.concat(tables).to_csv(index=False))
    write_atomic(out / 'hop.md', md)
    print(f"wrote {out}/hop.csv and hop.md")


if __name__ == '__main__':
    main()
