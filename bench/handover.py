"""How sharply the shipped model can draw, and what it costs: its hand-over prior gamma swept, against the in-betweener issue's targets.

The blend of the two warped keyframes is sharpened at the true time t by logit(beta) += (gamma - 1) logit(1 - t) (chapter 03a);
the shipped model uses gamma = 6. gamma = 1 keeps the flow network's own blend; a large gamma draws every pixel from the nearer
keyframe's warp, so nothing is drawn twice (at gamma 100 the prior outweighs even a saturated blend of the flow network,
its visibility included, at every in-between t = k/7). Rows:
the cross-fade, copy-nearest, and the shipped model at each gamma, on the clips of bench/peers.py's settings, marked with the
targets they meet against media/peers/results_<setting>.csv (as bench/ceiling.py marks them). Writes results_<setting>.csv/.md
and results.md.

    python bench/handover.py [--settings a b c] [--clips N] [--gammas 1 3 6 12 24 100] [--model FILE] [--out media/handover] [--threads N]
"""
import argparse, sys
from pathlib import Path

import torch

from stillframes.data import ToonClips
from stillframes.eval import evaluate, crossfade, copy_nearest
from stillframes.model import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_counts
from peers import SETTINGS, setting
from ceiling import XF, marked, write_setting, write_summary


class AtGamma:
    "The model drawn with its hand-over prior set to `gamma` (restored afterwards)."
    def __init__(self, model, gamma:float): self.model, self.gamma = model, gamma
    def animate(self, a, b, n):
        keep, self.model.handover = self.model.handover, self.gamma
        try: return self.model.animate(a, b, n)
        finally: self.model.handover = keep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument('--clips', type=int, help='clips per setting (default: those of bench/peers.py, 100, 100, 50)')
    ap.add_argument('--gammas', type=float, nargs='+', default=[1, 3, 6, 12, 24, 100])
    ap.add_argument('--model', default=None, help='model file (default: the shipped model)')
    ap.add_argument('--peers', default='media/peers', help='folder with bench/peers.py results_<setting>.csv, for the targets')
    ap.add_argument('--out', default='media/handover')
    ap.add_argument('--threads', type=int)
    a = ap.parse_args(argv)
    check_counts(ap, a, ('clips', 'threads'))
    if any(g <= 0 for g in a.gammas): ap.error('--gammas must be > 0')
    if a.threads: torch.set_num_threads(a.threads)
    model = load_model(a.model)
    shipped = model.handover
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    for key in a.settings:
        s = setting(key, a.clips)
        ds = ToonClips(s['clips'], frames=8, size=s['size'], split='test', motion=s['motion'])
        clips = torch.stack([ds[i][0] for i in range(len(ds))])
        rows = {f"gamma {g:g}" + (' (shipped)' if g == shipped else ''): AtGamma(model, g) for g in a.gammas}
        table, _ = evaluate({XF: crossfade, 'copy_nearest': copy_nearest} | rows, clips, batch_size=10, progress=False, device='cpu')
        table, note = marked(table, Path(a.peers) / f'results_{key}.csv')
        title = (f"({key}) {s['clips']} held-out ToonClips (test split), {s['size']} px, 8 frames (in-betweens 1..6), motion {s['motion']}; "
                 f"{a.model or 'the shipped model'} at each hand-over prior gamma")
        write_setting(out, key, title, note, table)
    write_summary(out)


if __name__ == '__main__':
    main()
