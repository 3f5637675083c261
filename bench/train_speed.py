"""Training speed and memory on this machine: generated frames per second and peak resident memory of the training loop.

For each preset (`tiny`, `small`) and frame size (64 and 256 px by default), a fresh Python process builds the trainer with
the adversarial phase on from the first step (every loss and both discriminators run: the costliest step), runs
`--warmup` steps, then times `--steps` more through `Trainer.fit` itself, ToonClips rendering and the data loader
included. Frames/s counts generated frames (batch x clip length) per second. Nothing here is a test: it prints figures.

`--profile` instead runs the torch profiler over a few steps of one preset and size and prints the operators that take
the most CPU time.

    python bench/train_speed.py [--presets tiny small] [--sizes 64 256] [--steps 5] [--warmup 2] [--threads 2] [--out media/train_speed]
    python bench/train_speed.py --profile small --sizes 64 [--steps 4]
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_atomic, write_table


def build(preset:str, size:int, threads:int, n_clips:int):
    import torch
    torch.set_num_threads(threads)
    from stillframes.train import TrainConfig, Trainer, clip_dataset
    cfg = getattr(TrainConfig, preset)(size=size, **{'optim.warmup': 0, 'data.n_clips': n_clips, 'log.sample_every': 0, 'log.tensorboard': False})
    return cfg, Trainer(cfg, device='cpu'), clip_dataset(cfg)


def worker(preset:str, size:int, steps:int, warmup:int, threads:int, n_clips:int) -> dict:
    cfg, tr, ds = build(preset, size, threads, n_clips)
    idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tr.fit(warmup, data=ds, progress=False)
    t0 = time.perf_counter()
    tr.fit(warmup + steps, data=ds, progress=False)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frames = steps * cfg.optim.batch_size * cfg.frames
    return dict(preset=preset, size=size, batch=f'{cfg.optim.batch_size}x{cfg.frames}', s_per_step=secs / steps,
                frames_per_s=frames / secs, peak_mb=peak, growth_mb=peak - idle, threads=threads)


def profile(preset:str, size:int, steps:int, warmup:int, threads:int, n_clips:int, rows:int=25) -> str:
    from torch.profiler import profile as prof, ProfilerActivity
    cfg, tr, ds = build(preset, size, threads, n_clips)
    tr.fit(warmup, data=ds, progress=False)
    with prof(activities=[ProfilerActivity.CPU]) as p:
        tr.fit(warmup + steps, data=ds, progress=False)
    by_op = p.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows)
    return f"{preset} at {size} px, {steps} steps (after {warmup}), {threads} threads\n\n{by_op}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--presets', nargs='+', default=['tiny', 'small'], choices=['tiny', 'small', 'base', 'full'])
    ap.add_argument('--sizes', nargs='+', type=int, default=[64, 256])
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=min(2, os.cpu_count()))
    ap.add_argument('--n-clips', type=int, default=64, help='ToonClips clips the loader draws from')
    ap.add_argument('--out', help='write train_speed.csv and train_speed.md (or profile.txt) here')
    ap.add_argument('--profile', metavar='PRESET', help='profile this preset at the first --sizes instead')
    ap.add_argument('--worker', nargs=2, metavar=('PRESET', 'SIZE'), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]), a.steps, a.warmup, a.threads, a.n_clips))); return
    if a.profile:
        text = profile(a.profile, a.sizes[0], a.steps, a.warmup, a.threads, a.n_clips)
        text = f"{machine(a.threads)}\n\n{text}"
        print(text)
        if a.out: Path(a.out).mkdir(parents=True, exist_ok=True); write_atomic(Path(a.out) / f'profile_{a.profile}_{a.sizes[0]}.txt', text)
        return
    import pandas as pd
    rows = []
    for preset in a.presets:
        for size in a.sizes:
            r = subprocess.run([sys.executable, __file__, '--worker', preset, str(size), '--steps', str(a.steps), '--warmup', str(a.warmup),
                                '--threads', str(a.threads), '--n-clips', str(a.n_clips)], capture_output=True, text=True)
            if r.returncode != 0: print(f"{preset} at {size} px failed: {r.stderr.strip().splitlines()[-1:]}"); continue
            rows.append(json.loads(r.stdout.strip().splitlines()[-1])); print(rows[-1], flush=True)
    if not rows: sys.exit("every row failed")
    table = pd.DataFrame(rows)
    head = f"{machine(a.threads)}; adversarial phase on (every loss, both discriminators); {a.steps} timed steps after {a.warmup}, data loading included"
    write_table(table, a.out, 'train_speed', head, digits=2)


if __name__ == '__main__':
    main()
