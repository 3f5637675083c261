"""Ablations of the tiny preset with 3 seeds: what each part of the model does, measured on held-out ToonClips.

Each variant switches one part off (or on) and trains the tiny preset from scratch for `--steps` steps (the adversarial
phase starts at 2/3 of them) with each of `--seeds`; its EMA model is scored on `--clips` held-out test clips (64 px,
8 frames, in-betweens 2-7): PSNR, SSIM, line chamfer (% of the diagonal) and toon FD, and the share of the
in-betweens' pixels that the refiner paints rather than copies from the warp (1 - M, `paint`). The summary gives, per variant
and metric, the mean over seeds with a 95% t-interval, and the paired difference from the full model (same seeds)
with its 95% interval; where that interval crosses zero the part has no measurable effect at this budget.

    python bench/ablations.py [--steps 300] [--seeds 0 1 2] [--clips 100] [--out runs/ablations] [--csv media/ablations] [--only NAME ...]

A finished run (its checkpoint in OUT/NAME/seedS) is reused, an interrupted one continued; its scores are kept beside it
in result.json, so several processes can share the work (`--only` with disjoint variants, one thread each) and a last
call without `--only` gathers the default table (each call writes the tables of the variants it covers). The learned
timing u(t) of variants that have one goes to timing.csv, and the mask's saturation over training (mean M^2 per logged
step, 1: every pixel copies the warp) of the runs with a refiner whose log is in OUT to mask_log.csv.
"""
import argparse, json, sys, time
from pathlib import Path

import pandas as pd
import torch

from stillframes.data import ToonClips
from stillframes.train import TrainConfig, config_diff, load_model, ckpt_step, train
from stillframes.eval import evaluate, paired_effects, t_interval, CANONICAL_CLIPS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_atomic

METRICS = ('psnr', 'ssim', 'line_cd', 'toon_fd')
DIGITS = {'psnr': 4, 'ssim': 5, 'line_cd': 4, 'toon_fd': 3}   # enough decimals to show effects this small


def variants(steps:int) -> dict:
    return {
        'full (tiny)': {},
        'no refiner (the warp alone)': {'generator.refiner': False},
        'learned timing u(t) (8 pieces)': {'path.timing': 8},
        'no adversarial phase': {'optim.warmup': steps},
        'no sequence D': {'loss.seq_adv': 0.0},
        'no SSL decoders': {'loss.ssl': 0.0},
        'no edge negatives': {'discriminator.edge_negatives': 0},
        'MotionPath instead of lerp': {'path.method': 'motion'},
        'path-length penalty (w 2)': {'loss.pl_weight': 2.0},
        'no temporal loss': {'loss.temporal': 0.0},
    }


def extra_variants(steps:int) -> dict:
    "Variants run only when named with --only (not in the default table)."
    return {
        'refiner corrects the blend too': {'generator.blend': True},
        'refiner corrects the blend, no selection loss': {'generator.blend': True, 'loss.select': 0.0},
        'no hand-over prior (gamma 1, not 6)': {'motion.handover': 1.0},
        'adversarial-led (reconstruction x0.1)': {'loss.rec': 1.0, 'loss.temporal': 0.5},
        'adversarial-led, refiner free to paint': {'loss.rec': 1.0, 'loss.temporal': 0.5, 'generator.mask_init': 0.0, 'loss.mask_sat': 0.1},
        'mask starts at an even split (logit 0, not 3)': {'generator.mask_init': 0.0},
        'adversarial-led, mask starts at an even split': {'loss.rec': 1.0, 'loss.temporal': 0.5, 'generator.mask_init': 0.0},
        'adversarial-led, mask starts at an even split, no adversarial phase': {'loss.rec': 1.0, 'loss.temporal': 0.5, 'generator.mask_init': 0.0, 'optim.warmup': steps},
    }


def slug(name): return ''.join(c if c.isalnum() else '_' for c in name).strip('_')


def painted_cell(paint:pd.Series) -> str:
    "The painted share over seeds, mean +- 95% interval; seeds whose share is unknown (no refiner, or a reused result without its checkpoint) are left out and counted."
    p = paint.dropna().astype(float)
    if p.empty: return '–'
    cell = f'{p.iloc[0]:.4f}' if len(p) == 1 else '{:.4f} ± {:.4f}'.format(*t_interval(p))
    return cell if len(p) == len(paint) else f'{cell} ({len(p)} of {len(paint)} seeds)'


def summarise(runs:pd.DataFrame, base:str='full (tiny)') -> pd.DataFrame:
    "Per variant and metric: mean +- 95% interval over seeds, and the paired difference from `base` (`stillframes.eval.paired_effects`)."
    effects = paired_effects(runs, base, METRICS) if base in set(runs.variant) else None   # without the base: no differences, not NaN
    if effects is not None: effects = effects.set_index(['variant', 'metric']) if len(effects) else None   # the base alone: nothing to compare
    rows = []
    for name, g in runs.groupby('variant', sort=False):
        row = {'variant': name, 'seeds': len(g)}
        if 'paint' in g: row['painted'] = painted_cell(g.paint)
        for k in METRICS:
            m, h = t_interval(g[k])
            row[k] = f'{m:.{DIGITS[k]}f} ± {h:.{DIGITS[k]}f}'
            if effects is None: continue
            if name == base: row[f'Δ{k}'] = '–'                    # no difference from itself
            else:
                e = effects.loc[(name, k)]
                row[f'Δ{k}'] = f"{e['diff']:+.{DIGITS[k]}f} ± {e.half:.{DIGITS[k]}f}" + (' (n.s.)' if e.verdict == 'no measurable effect' and e.half == e.half else '')
        rows.append(row)
    return pd.DataFrame(rows).set_index('variant')


@torch.no_grad()
def painted(model, clips:torch.Tensor, batch:int=25) -> float | None:
    "Mean share of the in-betweens' pixels that the refiner paints, 1 - M (GANimation's mask), over `clips`; None without a refiner (null in the JSON, NaN in the tables)."
    if model.refiner is None: return None
    model.eval()
    shares = [(1 - model(c[:, 0], c[:, -1], c.shape[1], return_parts=True)[1]['mask']).flatten(1).mean(1) for c in clips.split(batch)]
    return torch.cat(shares).mean().item()


@torch.no_grad()
def learned_timing(model, clips:torch.Tensor, n:int=8) -> list:
    "The learned timing u(t) at t = k / (n - 1), averaged over the keyframe pairs of `clips` (None when the model has none)."
    if model.timing is None: return None
    wa, wb = model.keyframe_styles(clips[:, 0], clips[:, -1])
    return model.times(torch.linspace(0, 1, n).expand(len(clips), n), wa, wb).mean(0).tolist()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--clips', type=int, default=CANONICAL_CLIPS, help='held-out clips (default: the canonical set)')
    ap.add_argument('--n-clips', type=int, default=1024, help='training clips')
    ap.add_argument('--out', default='runs/ablations')
    ap.add_argument('--csv', default='media/ablations')
    ap.add_argument('--only', nargs='*', help='variants to run (default all)')
    a = ap.parse_args(argv)
    test = ToonClips(a.clips, frames=8, size=64, split='test')
    clips = torch.stack([test[i][0] for i in range(len(test))])
    rows, out, csv = [], Path(a.out), Path(a.csv)
    csv.mkdir(parents=True, exist_ok=True)
    every = {**variants(a.steps), **extra_variants(a.steps)}
    unknown = set(a.only or ()) - set(every)
    if unknown: ap.error(f'unknown variants {sorted(unknown)}; known: {list(every)}')
    for name, kw in every.items():
        if (name not in a.only) if a.only else (name not in variants(a.steps)): continue
        for seed in a.seeds:
            run = out / slug(name) / f'seed{seed}'
            done = run / 'result.json'
            cfg = TrainConfig.tiny(**{'optim.steps': a.steps, 'optim.warmup': 2 * a.steps // 3, 'data.n_clips': a.n_clips,
                                      'log.sample_every': 0, 'seed': seed, **kw})
            if done.exists():   # reused only when it was scored on these clips and trained with exactly this config
                r = json.loads(done.read_text(encoding='utf-8'))
                if r.get('steps') == a.steps and r.get('clips') == a.clips and not config_diff(json.loads((run / 'config.json').read_text(encoding='utf-8')), cfg):
                    if 'paint' not in r:   # scored before the bench measured what the refiner paints (None: its checkpoint is gone)
                        r['paint'] = painted(load_model(run / 'checkpoint.pt', 'cpu'), clips) if (run / 'checkpoint.pt').is_file() else None
                        write_atomic(done, json.dumps(r))
                    rows.append(r); print(r, flush=True); continue
            ckpt = run / 'checkpoint.pt'
            finished = ckpt.exists() and ckpt_step(ckpt) >= a.steps
            start = time.time()
            path = train(cfg, run, resume=True, progress=False)   # refuses a checkpoint of another config
            secs = None if finished else round(time.time() - start, 1)   # trained before this call: its time is unknown here
            model = load_model(path, 'cpu')
            table, _ = evaluate({name: model}, clips, progress=False, device='cpu')
            rows.append({'variant': name, 'seed': seed, 'steps': ckpt_step(path), 'clips': a.clips, 'train_s': secs,
                         **table.iloc[0][list(METRICS)].to_dict(), 'paint': painted(model, clips)})
            print(rows[-1], flush=True)
            write_atomic(done, json.dumps(rows[-1]))
    write_atomic(csv / 'runs.csv', pd.DataFrame(rows).to_csv(index=False))
    timed = [r for r in rows if every[r['variant']].get('path.timing')]
    timing = [{'variant': r['variant'], 'seed': r['seed'], **{f't={k / 7:.3f}': x for k, x in enumerate(
              learned_timing(load_model(out / slug(r['variant']) / f"seed{r['seed']}" / 'checkpoint.pt', 'cpu'), clips))}} for r in timed]
    if timing: write_atomic(csv / 'timing.csv', pd.DataFrame(timing).to_csv(index=False))
    else: (csv / 'timing.csv').unlink(missing_ok=True)
    logs = []   # the mask's saturation over training, mean M^2 (1: every pixel copies the warp), for the runs whose log is here
    for r in rows:
        f = out / slug(r['variant']) / f"seed{r['seed']}" / 'metrics.csv'
        m = pd.read_csv(f) if f.is_file() else None
        if m is not None and 'mask_sat' in m and m.mask_sat.notna().any():
            logs.append(m[['step', 'mask_sat']].dropna().assign(variant=r['variant'], seed=r['seed']))
    if logs: write_atomic(csv / 'mask_log.csv', pd.concat(logs)[['variant', 'seed', 'step', 'mask_sat']].to_csv(index=False))
    else: (csv / 'mask_log.csv').unlink(missing_ok=True)
    summary = summarise(pd.DataFrame(rows))
    write_atomic(csv / 'summary.csv', summary.to_csv())
    md = (f"tiny preset, {a.steps} steps (adversarial from step {2 * a.steps // 3}), seeds {a.seeds}, {a.clips} held-out clips, "
          f"64 px; mean ± 95% t-interval{'; Δ = paired difference from the full model' if summary.filter(like='Δ').shape[1] else ''}\n\n{summary.to_markdown()}\n")
    write_atomic(csv / 'summary.md', md)
    print(md)


if __name__ == '__main__':
    main()
