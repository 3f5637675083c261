"""Regenerate the pictures and tables that README.md shows (`media/`). Run from the repository root:
`python tools/make_media.py` (toon clip grid) and `stillframes-eval --baselines --data toon --out media/baselines`
(the baseline table)."""
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import torch

from stillframes.data import ToonClips
from stillframes.utils import clip_grid

ROOT = Path(__file__).resolve().parent.parent


def toonclips_grid(path=ROOT / 'media' / 'toonclips.png', n=4):
    ds = ToonClips(n, frames=8, size=64, split='test')
    clips = torch.stack([ds[i][0] for i in range(n)])
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, clip_grid(clips, gap=2))
    return path


if __name__ == '__main__':
    print(toonclips_grid())
