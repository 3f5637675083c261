"""`model.animate` latency: 16 frames (14 in-betweens) between two keyframes, at 64x64, 256x256, 576x320 and 1920x1080.

For each size a fresh Python process loads the shipped model (or `--model`), renders two ToonClips keyframes at that size,
draws once to warm up, then `--reps` more times, and reports the median seconds per call, per in-between, and the
process's peak resident memory (and its growth over the loaded, idle process). The in-betweener issue asks for at most 2 s
at 256x256 on this 2-core CPU; that row says whether it holds. Nothing here is a test: it prints figures.

    python bench/latency.py [--sizes 64x64 256x256 576x320 1920x1080] [--frames 16] [--reps 3] [--threads 2] [--out media/latency]
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_table

TARGET = {'256x256': 2.0}      # seconds for 16 frames, from the in-betweener issue


def worker(model_path, w:int, h:int, frames:int, reps:int, threads:int) -> dict:
    import torch
    torch.set_num_threads(threads)
    from stillframes.data import ToonClips
    from stillframes.model import load_model
    a, b = ToonClips(1, frames=2, size=(h, w), split='test', ss=1)[0][0]
    model = load_model(model_path, 'cpu')
    idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.animate(a, b, frames)
    secs = []
    for _ in range(reps):
        t0 = time.perf_counter(); clip = model.animate(a, b, frames); secs.append(time.perf_counter() - t0)
    assert clip.shape == (frames, 3, h, w), clip.shape
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = sorted(secs)[len(secs) // 2]
    return dict(size=f'{w}x{h}', frames=frames, s_per_call=s, s_per_inbetween=s / (frames - 2), peak_mb=peak, growth_mb=peak - idle, threads=threads)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sizes', nargs='+', default=['64x64', '256x256', '576x320', '1920x1080'])
    ap.add_argument('--frames', type=int, default=16)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--threads', type=int, default=min(2, os.cpu_count()))
    ap.add_argument('--model', help='a model file (default: the shipped model)')
    ap.add_argument('--out', help='write latency.csv and latency.md here')
    ap.add_argument('--worker', nargs=2, metavar=('W', 'H'), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.model, int(a.worker[0]), int(a.worker[1]), a.frames, a.reps, a.threads))); return
    import pandas as pd
    rows = []
    for size in a.sizes:
        w, h = map(int, size.lower().split('x'))
        cmd = [sys.executable, __file__, '--worker', str(w), str(h), '--frames', str(a.frames), '--reps', str(a.reps), '--threads', str(a.threads)]
        r = subprocess.run(cmd + (['--model', a.model] if a.model else []), capture_output=True, text=True)
        if r.returncode != 0: print(f"{size} failed: {r.stderr.strip().splitlines()[-1:]}"); continue
        row = json.loads(r.stdout.strip().splitlines()[-1])
        if row['size'] in TARGET and a.frames == 16:
            row['target_s'] = TARGET[row['size']]; row['holds'] = 'yes' if row['s_per_call'] <= row['target_s'] else 'NO'
        rows.append(row); print(row, flush=True)
    if not rows: sys.exit('every row failed')
    write_table(pd.DataFrame(rows).fillna(''), a.out, 'latency', f"{machine(a.threads)}; `model.animate(a, b, {a.frames})`, median of {a.reps} calls after a warm-up")


if __name__ == '__main__':
    main()
