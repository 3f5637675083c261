"""What the keyframes allow: the in-betweener issue's targets against oracles that draw every line right and guess only the timing.

Rows, on the clips of bench/peers.py's settings (`stillframes.eval.hidden_oracles`, `oracle_rows`; chapter 07 draws them):
the cross-fade; `linear` (characters at constant velocity, RIFE's assumption executed perfectly; the camera keeps its ease) and
`prior mean` (the mean of `--draws` renders with the timing redrawn from the data's prior), with mixtures (1 - alpha) linear +
alpha mean between them; `blind guess` (every character straight, in-out ease, no hop or sway); `told the hop`, `told the
ease`, `told the ease and bend` (the informed guess handed only those cues, the blind guess's for the rest); then `informed guess` (given the ease, hops and bend that the keyframes' squash and stretch show, one sharp guess at the rest) and
`informed mean` (the mean of redraws that keep what the keyframes show), with their mixtures. Each row is marked with the
targets it meets against the RIFE v4.2x and cross-fade rows of media/peers/results_<setting>.csv: PSNR >= 1 dB above the
better of the two, SSIM >= RIFE's + 0.01, toon FD <= 0.8 x RIFE's; the note says so when that table's cross-fade row differs from
this run's (other clips). Writes results_<setting>.csv/.md and results.md (every setting's table in the folder).

    python bench/ceiling.py [--settings a b c] [--clips N] [--draws 16] [--peers media/peers] [--out media/ceiling] [--threads N]
"""
import argparse, sys
from pathlib import Path

import pandas as pd
import torch

from stillframes.data import ToonClips
from stillframes.eval import evaluate, crossfade, hidden_oracles, oracle_rows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_counts, machine, write_atomic
from peers import SETTINGS, setting

RIFE, XF = 'RIFE v4.2x (peer)', 'crossfade'


def targets(peers:pd.DataFrame) -> dict:
    "The three bars of the in-betweener issue, from a peers table."
    r, x = peers.loc[RIFE], peers.loc[XF]
    return {'psnr': max(r['psnr'], x['psnr']) + 1.0, 'ssim': r['ssim'] + 0.01, 'toon_fd': 0.8 * r['toon_fd']}


def mark(table:pd.DataFrame, bars:dict) -> pd.DataFrame:
    "Add a column per target (True where the row meets it) and `all three`."
    t = table.copy()
    t['psnr_ok'] = t['psnr'] >= bars['psnr']
    t['ssim_ok'] = t['ssim'] >= bars['ssim']
    t['toon_fd_ok'] = t['toon_fd'] <= bars['toon_fd']
    t['all_three'] = t['psnr_ok'] & t['ssim_ok'] & t['toon_fd_ok']
    return t


def marked(table:pd.DataFrame, f:Path) -> tuple:
    "`table` marked with the targets from the peers table `f` (`mark`), and the note that says which (or why there are none)."
    if f.is_file():
        peers = pd.read_csv(f, index_col=0)
        if RIFE in peers.index and XF in peers.index:
            bars = targets(peers)
            same = abs(peers.loc[XF, 'psnr'] - table.loc[XF, 'psnr']) < 1e-3 and abs(peers.loc[XF, 'ssim'] - table.loc[XF, 'ssim']) < 1e-4
            clips_note = 'RIFE and cross-fade on the same clips' if same else 'WARNING: its cross-fade row differs from this run\'s: other clips'
            return mark(table, bars), (f"targets from {f} ({clips_note}): PSNR >= {bars['psnr']:.2f} dB, "
                                       f"SSIM >= {bars['ssim']:.4f}, toon FD <= {bars['toon_fd']:.3g}\n")
    return table, f"no RIFE and cross-fade rows in {f}: run bench/peers.py first for the targets\n"


def write_setting(out:Path, key:str, title:str, note:str, table:pd.DataFrame):
    "Print one setting's table under its title, the machine and `note`, and write it as OUT/results_KEY.csv and .md."
    md = f"{title}\nmachine: {machine()}\n{note}\n{table.round(4).to_markdown(floatfmt='.4g')}\n"
    write_atomic(out / f'results_{key}.csv', table.to_csv())
    write_atomic(out / f'results_{key}.md', md)
    print(md, flush=True)


def write_summary(out:Path):
    "OUT/results.md: every setting's table in the folder, in order."
    write_atomic(out / 'results.md', '\n'.join(f.read_text(encoding='utf-8') for f in sorted(out.glob('results_*.md'))))
    print(f"wrote {out}/results.md and results_<setting>.csv/.md")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument('--clips', type=int, help='clips per setting (default: those of bench/peers.py, 100, 100, 50)')
    ap.add_argument('--draws', type=int, default=16, help='redraws of the hidden timing averaged into the prior mean (default 16)')
    ap.add_argument('--peers', default='media/peers', help='folder with bench/peers.py results_<setting>.csv, for the targets')
    ap.add_argument('--out', default='media/ceiling')
    ap.add_argument('--threads', type=int)
    a = ap.parse_args(argv)
    check_counts(ap, a, ('clips', 'draws', 'threads'))
    if a.threads: torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    for key in a.settings:
        s = setting(key, a.clips)
        ds = ToonClips(s['clips'], frames=8, size=s['size'], split='test', motion=s['motion'])
        clips, oracles = hidden_oracles(ds, a.draws)
        table, _ = evaluate({XF: crossfade} | oracle_rows(clips, oracles), clips, batch_size=10, progress=False, device='cpu')
        table = table.drop(columns='ms_per_frame')
        table, note = marked(table, Path(a.peers) / f'results_{key}.csv')
        title = (f"({key}) {s['clips']} held-out ToonClips (test split), {s['size']} px, 8 frames (in-betweens 1..6), "
                 f"motion {s['motion']}, means of {a.draws} redraws")
        write_setting(out, key, title, note, table)
    write_summary(out)


if __name__ == '__main__':
    main()
