"""Parameter counts per size, and the CPU time of one forward+backward of the generator and both
discriminators at 64 px, batch 16 clips x 8 frames (128 frames).

    python bench/model_step.py [--ngf 64 --ndf 32] [--threads N] [--repeats 3]
"""
import argparse, time

import torch

from stillframes.discriminators import ImageDiscriminator, SequenceDiscriminator
from stillframes.generator import Generator


def n_params(m): return sum(p.numel() for p in m.parameters())


def timed(fn, repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ngf', type=int, default=64)
    ap.add_argument('--ndf', type=int, default=32)
    ap.add_argument('--w-dim', type=int, default=512)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--frames', type=int, default=8)
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--threads', type=int, default=torch.get_num_threads())
    ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    print(f'parameters (M), ngf={a.ngf} ndf={a.ndf} w_dim={a.w_dim}')
    print('| size | G | image D | sequence D |\n|---|---|---|---|')
    for s in (32, 64, 128, 256):
        g = Generator(size=s, w_dim=a.w_dim, ngf=a.ngf)
        di, ds = ImageDiscriminator(size=s, ndf=a.ndf), SequenceDiscriminator(frames=a.frames, size=s, ndf=a.ndf)
        print(f'| {s} | {n_params(g)/1e6:.2f} | {n_params(di)/1e6:.2f} | {n_params(ds)/1e6:.2f} |')

    B, m, S = a.batch, a.frames, a.size
    g = Generator(size=S, w_dim=a.w_dim, ngf=a.ngf)
    di, ds = ImageDiscriminator(size=S, ndf=a.ndf), SequenceDiscriminator(frames=m, size=S, ndf=a.ndf)
    w = torch.randn(B * m, a.w_dim)
    frames = torch.rand(B * m, 3, S, S) * 2 - 1

    def g_step():
        g.zero_grad(); g(w).square().mean().backward()

    def di_step():
        di.zero_grad()
        logits, rec, _ = di(frames, real=True)
        (logits.mean() + rec).backward()

    def ds_step():
        ds.zero_grad(); sum(l.mean() for l in ds(frames.view(B, m, 3, S, S))).backward()

    print(f'\nforward+backward at {S} px, {B} clips x {m} frames, {a.threads} thread(s), best of {a.repeats}:')
    for name, fn in [('G (128 frames)', g_step), ('image D, real=True (128 frames)', di_step), ('sequence D (16 clips)', ds_step)]:
        print(f'  {name:34s} {timed(fn, a.repeats):7.2f} s')


if __name__ == '__main__':
    main()
