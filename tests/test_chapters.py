"Every chapter opens with its banner (title, then what the chapter is for in the shipped model), and the banner matches the shipped model file."
import json
from pathlib import Path

import pytest

from stillframes.model import shipped_banner

NBS = Path(__file__).resolve().parent.parent / 'nbs'
CHAPTERS = sorted(NBS.glob('[0-9]*.ipynb'))


def test_there_are_chapters():
    assert len(CHAPTERS) >= 13


@pytest.mark.parametrize('path', CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_opens_with_its_current_banner(path):
    cells = json.loads(path.read_text())['cells']
    assert cells[0]['cell_type'] == 'markdown' and ''.join(cells[0]['source']).startswith('# '), 'the first cell is the title'
    banners = [i for i, c in enumerate(cells) if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith('> **In the shipped model**')]
    assert banners == [1], f"one banner, right after the title; found it in cells {banners}"
    assert ''.join(cells[1]['source']) == shipped_banner(path.stem), "stale banner: run python tools/make_banners.py"
