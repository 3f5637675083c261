"""Throughput of the evaluation measures: toon FD (ToonNet features), line chamfer (DoG lines and distance transforms),
and FID's Inception features, in images per second on `--n` ToonClips frames at each `--sizes`.

FID needs pytorch-fid's Inception weights in $TORCH_HOME (see stillframes.eval.inception_weights); without them its row is
skipped with the reason. PSNR and SSIM are left out: they cost nothing beside these. Nothing here is a test: it prints figures.

    python bench/metric_speed.py [--n 200] [--sizes 64 256] [--threads 2] [--out media/metric_speed]
"""
import argparse, os, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_table


def timed(fn) -> float:
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--n', type=int, default=200, help='images per measure and size')
    ap.add_argument('--sizes', nargs='+', type=int, default=[64, 256])
    ap.add_argument('--threads', type=int, default=min(2, os.cpu_count()))
    ap.add_argument('--out', help='write metric_speed.csv and metric_speed.md here')
    a = ap.parse_args(argv)
    import pandas as pd, torch
    torch.set_num_threads(a.threads)
    from stillframes.data import ToonClips
    from stillframes.eval import load_toon_net, toon_features, line_chamfer, inception_net, inception_features
    net, rows = load_toon_net(device='cpu'), []
    try: inception_net('cpu'); fid_reason = None
    except RuntimeError as e: fid_reason = str(e)
    for size in a.sizes:
        ds = ToonClips(a.n, frames=2, size=size, split='test')
        pairs = torch.stack([ds[i][0] for i in range(a.n)])            # (n, 2, 3, size, size): two frames of each clip
        x, y = pairs[:, 0], pairs[:, 1]
        toon_features(x[:8], net)                                       # warm-up
        runs = {'toon FD features (ToonNet)': lambda: toon_features(x, net),
                'line chamfer (pairs)': lambda: line_chamfer(x, y)}
        if fid_reason is None:
            inception_features(x[:8], device='cpu')
            runs['FID features (Inception)'] = lambda: inception_features(x, device='cpu')
        for name, fn in runs.items():
            s = timed(fn)
            rows.append(dict(measure=name, size=size, images=a.n, seconds=s, images_per_s=a.n / s)); print(rows[-1], flush=True)
        if fid_reason is not None: print(f"FID features skipped: {fid_reason}")
    tail = f"\nFID features skipped: {fid_reason}\n" if fid_reason else ''
    write_table(pd.DataFrame(rows), a.out, 'metric_speed', f"{machine(a.threads)}; {a.n} ToonClips test frames per row", tail, digits=2)


if __name__ == '__main__':
    main()
