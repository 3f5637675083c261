"""Short CPU ablations of the tiny preset, scored on held-out ToonClips (chapter 06 reads the CSVs).

Each variant trains the tiny preset from scratch for `--steps` steps (adversarial variants switch the
discriminators on after `--steps / 2`), then its EMA model is scored on `--clips` held-out clips
(PSNR, SSIM, toon FD on the six middle frames) and, for the path-length pair, PPL in Z and W.
FreezeD vs full fine-tuning starts from the reconstruction-only run and fine-tunes it adversarially
on 100 clips of ToonClips style B, scored on held-out style-B clips.

    python bench/ablations.py [--steps 200] [--clips 100] [--out runs/ablations] [--csv media/ablations]

A finished variant (its checkpoint in OUT/NAME) is reused, so an interrupted run continues.
"""
import argparse, time
from pathlib import Path

import pandas as pd
import torch

from stillframes.data import ToonClips
from stillframes.eval import evaluate, BASELINES
from stillframes.mapping import perceptual_path_length
from stillframes.train import Trainer, TrainConfig, load_model, ckpt_step, train


def variants(steps):
    half = {'optim.warmup': steps // 2}
    return {
        'reconstruction only (tiny)': {},
        'no motion-compensated base': {'generator.warp': False, 'generator.composite': True, 'generator.mask_init': 4.0},
        'no keyframe skips': {'generator.skips': False},
        'path-length reg. (w 2)': {'loss.pl_weight': 2.0},
        'adversarial (image D + SSL, sequence D)': half,
        'adversarial, no SSL decoders': {**half, 'loss.ssl': 0.0},
        'adversarial, no sequence D': {**half, 'loss.seq_adv': 0.0},
        'adversarial + compositing head': {**half, 'generator.composite': True, 'generator.mask_init': 4.0},
    }


def slug(name): return ''.join(c if c.isalnum() else '_' for c in name).strip('_')


def run(cfg, out, init=None):
    "`train` `cfg` into `out` (a finished run is reused, an interrupted one continued); the EMA model, its step and the training seconds (None when reused)."
    ckpt = Path(out) / 'checkpoint.pt'
    reused = ckpt.exists() and ckpt_step(ckpt) >= cfg.optim.steps
    start = time.time()
    path = train(cfg, out, resume=True, progress=False, init=init)
    return load_model(path, 'cpu'), ckpt_step(path), None if reused else time.time() - start


def ppl(model, keyframes, space, n=256):
    "PPL of `model` along W (lerp) or Z (slerp) with pixel MSE as the distance, at t = 0.5 between fixed keyframes."
    a, b = keyframes
    def generate(w):
        k = w.shape[0]
        aa, bb = a.expand(k, -1, -1, -1), b.expand(k, -1, -1, -1)
        skips = model.skips(aa, bb) if model.skips is not None else None
        return model.synthesize(w, torch.full((k,), 0.5), aa, bb, skips)[0]
    dist = lambda x, y: (x - y).pow(2).flatten(1).mean(1)
    with torch.no_grad(): return perceptual_path_length(generate, model.mapping, dist, n=n, space=space, batch=64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=200)
    ap.add_argument('--clips', type=int, default=100)
    ap.add_argument('--out', default='runs/ablations')
    ap.add_argument('--csv', default='media/ablations')
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out, csv = Path(a.out), Path(a.csv)
    csv.mkdir(parents=True, exist_ok=True)
    test = ToonClips(a.clips, frames=8, size=64, split='test')
    held = test[0][0]
    rows, ppl_rows = [], []
    untrained = Trainer(TrainConfig.tiny(), None, 'cpu')
    methods = {'untrained (step 0: block matching alone)': untrained.ema, 'crossfade': BASELINES['crossfade']}
    for name, kw in variants(a.steps).items():
        cfg = TrainConfig.tiny(**{'optim.steps': a.steps, 'optim.warmup': a.steps, **kw})
        model, step, sec = run(cfg, out / slug(name))
        methods[name] = model
        if sec is not None: rows.append({'method': name, 'train_s': round(sec, 1)})
        if name in ('reconstruction only (tiny)', 'path-length reg. (w 2)'):
            for space in ('z', 'w'):
                ppl_rows.append({'run': name, 'space': space.upper(), 'ppl': ppl(model, (held[:1], held[-1:]), space)})
        print(f'{name}: {step} steps' + ('' if sec is None else f', {sec:.0f} s'), flush=True)
    table, by_t = evaluate(methods, test, device='cpu', progress=False)
    if rows: table = table.join(pd.DataFrame(rows).set_index('method'))
    elif (csv / 'ablations.csv').exists(): table = table.join(pd.read_csv(csv / 'ablations.csv', index_col='method')[['train_s']])
    table.to_csv(csv / 'ablations.csv'); by_t.to_csv(csv / 'ablations_by_t.csv')
    pd.DataFrame(ppl_rows).to_csv(csv / 'ppl.csv', index=False)
    print(table.round(3).to_markdown()); print(pd.DataFrame(ppl_rows).round(4).to_markdown(index=False))

    # FreezeD vs full fine-tuning: reconstruction-only run -> 100 clips of style B, adversarial from the first step
    base_ckpt = out / slug('reconstruction only (tiny)') / 'checkpoint.pt'
    test_b = ToonClips(a.clips, frames=8, size=64, split='test', style='B')
    ft = {'before fine-tuning (style A model)': methods['reconstruction only (tiny)'], 'crossfade': BASELINES['crossfade']}
    ft_steps = max(a.steps // 2, 1)
    for name, k in (('full fine-tuning', 0), ('FreezeD (last 2 D stages train)', 2)):
        cfg = TrainConfig.tiny(**{'optim.steps': ft_steps, 'optim.warmup': 0, 'data.style': 'B', 'data.n_clips': 100,
                                  'discriminator.finetune_last': k})
        ft[name], step, sec = run(cfg, out / slug('finetune ' + name), init=base_ckpt)
        print(f'{name}: {step} steps' + ('' if sec is None else f', {sec:.0f} s'), flush=True)
    ft_table, _ = evaluate(ft, test_b, device='cpu', progress=False)
    ft_table.to_csv(csv / 'freezed.csv')
    print(ft_table.round(3).to_markdown())


if __name__ == '__main__':
    main()
