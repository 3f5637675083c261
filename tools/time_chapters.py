"""Time each chapter top to bottom in a fresh kernel, `#| slow` and `#| gpu` cells skipped (their stored outputs kept), as
tools/run_nb.py runs them, and write the table to media/chapter_times.md (the README shows it). Outputs are saved back.

    python tools/time_chapters.py [nbs/05_train.ipynb ...] [--out media/chapter_times.md]
"""
import argparse, os, platform, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='*', help='default: every notebook in nbs/')
    ap.add_argument('--out', default=str(ROOT / 'media' / 'chapter_times.md'))
    a = ap.parse_args()
    nbs = a.notebooks or sorted(str(p) for p in (ROOT / 'nbs').glob('*.ipynb'))
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}      # the kernel's inline backend keeps the figures
    rows = []
    for nb in nbs:
        start = time.time()
        r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_nb.py'), nb, '--skip', 'slow', 'gpu'], env=env, capture_output=True, text=True)
        secs = time.time() - start
        if r.returncode: sys.exit(f"{nb} failed:\n{r.stderr[-3000:]}")
        rows.append((Path(nb).stem, secs)); print(f"{Path(nb).stem}: {secs:.0f} s", flush=True)
    import torch
    head = (f"Each chapter run top to bottom in a fresh kernel with its `#| slow` and `#| gpu` cells skipped (`python tools/time_chapters.py`), "
            f"kernel start-up included; {os.cpu_count()} CPUs ({platform.machine()}), torch {torch.__version__}.")
    times = {}
    if a.notebooks and Path(a.out).exists():      # timing some chapters again keeps the others' rows
        for line in Path(a.out).read_text().splitlines()[4:]:
            name, secs = [x.strip() for x in line.strip('|').split('|')]
            times[name] = float(secs)
    times.update(rows)
    table = '| chapter | seconds |\n|---|---|\n' + '\n'.join(f'| {n} | {s:.0f} |' for n, s in sorted(times.items()))
    Path(a.out).write_text(f"{head}\n\n{table}\n")
    print(f"wrote {a.out}")


if __name__ == '__main__':
    main()
