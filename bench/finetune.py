"""Fine-tuning on footage the shipped model never saw: a long ToonClips sequence in style B, 256x144, 200 frames.

The sequence is 10 held-out shots of 20 frames each (style B, motion 1.5), spliced. The model is fine-tuned on its even
frames only (`stillframes-train --data EVEN --init shipped --minutes M`: triplets of the clip's own drawings, FreezeD, the
flow network trainable), then asked for the odd frames: frame 2j+1 drawn at t = 1/2 between frames 2j and 2j+2, for every
odd frame whose neighbours are in one shot (90 frames). PSNR and toon FD of those 91 frames against the truth, before and
after, beside the cross-fade and RIFE v4.2x (skipped with the reason when its wheel is absent).

    python bench/finetune.py [--minutes 10] [--out media/finetune] [--run runs/finetune] [--threads 2]
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import write_atomic
SHOTS, PER_SHOT, SIZE, STYLE, MOTION = 10, 20, (144, 256), 'B', 1.5


def make_sequence(root:Path) -> torch.Tensor:
    "Write the 200-frame sequence to root/all and its even frames to root/even (named by their index); returns it (200,3,H,W)."
    import imageio.v3 as iio
    from stillframes.data import ToonClips
    from stillframes.utils import to_uint8
    ds = ToonClips(SHOTS, frames=PER_SHOT, size=SIZE, split='test', style=STYLE, motion=MOTION)
    seq = torch.cat([ds[i][0] for i in range(SHOTS)])
    for sub in ('all', 'even'): (root / sub).mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(to_uint8(seq)):
        iio.imwrite(root / 'all' / f'{k:04d}.png', f)
        if k % 2 == 0: iio.imwrite(root / 'even' / f'{k:04d}.png', f)
    return seq


def odd_targets() -> list:
    "Odd frames whose two even neighbours lie in one shot."
    return [j for j in range(1, SHOTS * PER_SHOT - 1, 2) if (j - 1) // PER_SHOT == (j + 1) // PER_SHOT]


def score(name:str, pred:torch.Tensor, seconds:float, true:torch.Tensor) -> dict:
    from stillframes.eval import psnr, toon_fd
    return dict(method=name, psnr=float(psnr(pred, true).mean()), toon_fd=toon_fd(pred, true), ms_per_frame=1000 * seconds / len(pred), frames=len(pred))


def predict(fn, seq:torch.Tensor, js:list, batch:int=8) -> tuple:
    out, start = [], time.perf_counter()
    for i in range(0, len(js), batch):
        j = js[i:i + batch]
        out.append(fn(seq[[k - 1 for k in j]], seq[[k + 1 for k in j]]))
    return torch.cat(out).clamp(-1, 1), time.perf_counter() - start


def model_fn(model):
    return lambda a, b: model.animate(a, b, times=[0.5])[:, 0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--minutes', type=float, default=10)
    ap.add_argument('--out', default='media/finetune')
    ap.add_argument('--run', default='runs/finetune', help='the fine-tuning run folder (resumed when it exists)')
    ap.add_argument('--threads', type=int, default=min(2, os.cpu_count()))
    ap.add_argument('--set', nargs='*', default=[], help='extra config overrides for stillframes-train')
    ap.add_argument('--no-peer', action='store_true')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from stillframes.model import load_model
    out, run = Path(a.out), Path(a.run)
    out.mkdir(parents=True, exist_ok=True)
    seq = make_sequence(run / 'footage')
    js = odd_targets()
    true = seq[js]
    rows = [score('cross-fade', *predict(lambda x, y: (x + y) / 2, seq, js), true)]
    if not a.no_peer:
        from peers import RIFE, peer_files
        try:
            rife = RIFE(peer_files())
            rows.append(score('RIFE v4.2x', *predict(lambda x, y: rife(x, y, 0.5), seq, js), true))
        except RuntimeError as e: print(f"RIFE v4.2x skipped: {e}")
    rows.append(score('stillframes (shipped), before', *predict(model_fn(load_model(device='cpu')), seq, js), true))
    cmd = ['stillframes-train', '--data', str(run / 'footage' / 'even'), '--init', 'shipped', '--minutes', str(a.minutes), '--out', str(run / 'train'),
           '--export', str(run / 'finetuned.pt'), '--no-progress', '--resume', *(['--set', *a.set] if a.set else [])]
    print(' '.join(cmd), flush=True)
    start = time.time()
    r = subprocess.run([os.path.join(os.path.dirname(sys.executable), cmd[0]), *cmd[1:]])
    if r.returncode != 0: sys.exit(f"fine-tuning failed (exit {r.returncode})")
    train_s = time.time() - start
    ft = load_model(run / 'finetuned.pt', 'cpu')
    rows.append(score(f'stillframes, fine-tuned {a.minutes:g} min', *predict(model_fn(ft), seq, js), true))
    table = pd.DataFrame(rows)
    steps = torch.load(run / 'train' / 'checkpoint.pt', map_location='cpu', weights_only=False)['step']
    note = (f"style B, 256x144, 200 frames (10 shots x 20, motion {MOTION}); fine-tuned on the 100 even frames for {a.minutes:g} min "
            f"({steps} steps, {train_s / 60:.1f} min wall with start-up); scored on the {len(js)} odd frames inside a shot; "
            f"{os.cpu_count()} CPUs, {a.threads} threads, torch {torch.__version__}")
    md = table.round(3).to_markdown(index=False)
    print(f"\n{note}\n\n{md}")
    write_atomic(out / 'finetune.csv', table.to_csv(index=False))
    write_atomic(out / 'finetune.md', f"{note}\n\nCommand: `{' '.join(cmd)}`\n\n{md}\n")
    write_atomic(out / 'finetune.json', json.dumps(dict(note=note, steps=steps, command=' '.join(cmd)), indent=1))


if __name__ == '__main__':
    main()
