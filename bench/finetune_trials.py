"""Which losses help fine-tuning on a clip? Short trials on the style-B sequence of bench/finetune.py.

Each trial fine-tunes the shipped model (`finetune_config` + `Trainer.init_from`, as `stillframes-train --init shipped`
does) for a fixed number of steps with one set of loss overrides, then scores the 90 odd frames (PSNR) with the model and its
EMA. Steps, not minutes, so trials run side by side (1 thread each) without changing each other's result.

    python bench/finetune_trials.py STEPS [FIELD=VALUE ...]      # one trial; prints one CSV row
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune import make_sequence, model_fn, odd_targets, predict


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    steps, overrides = int(argv[0]), argv[1:]
    torch.set_num_threads(1)
    from stillframes.train import Trainer, clip_dataset, finetune_config
    from stillframes.model import model_asset
    from stillframes.eval import psnr
    root = Path('runs/finetune_trials/footage')
    seq = make_sequence(root)
    cfg = finetune_config(str(root / 'even'), overrides=overrides)
    tr = Trainer(cfg, device='cpu').init_from(model_asset())
    ds = clip_dataset(cfg)
    torch.manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(ds), (cfg.optim.batch_size,))
        tr.train_step(torch.stack([ds[int(i)][0] for i in idx]))
    js = odd_targets()
    row = []
    for m in (tr.model, tr.ema):
        m.eval()
        row.append(f"{float(psnr(predict(model_fn(m), seq, js, batch=16)[0], seq[js]).mean()):.3f}")
    print(f"\"{' '.join(overrides) or 'FINETUNE defaults'}\",{steps},{row[0]},{row[1]}")


if __name__ == '__main__':
    main()
