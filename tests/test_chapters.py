"""Every chapter opens with its head, before its first code cell: the title, the banner (what the chapter is for in the
shipped model, matching the shipped model file), then the intuition with the paper's equation and a figure the chapter
draws. `python tools/chapter_heads.py` rebuilds the heads."""
import base64, json, re
from pathlib import Path

import pytest

from stillframes.model import shipped_banner

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / 'nbs').glob('[0-9]*.ipynb'))
APPENDICES = ('08_utils', '08a_checkpoints', '09_cli')     # helpers and command lines: banner only


def _src(c): return ''.join(c['source'])


def test_there_are_chapters():
    assert len(CHAPTERS) >= 13


@pytest.mark.parametrize('path', CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_head(path):
    cells = json.loads(path.read_text())['cells']
    assert cells[0]['cell_type'] == 'markdown' and _src(cells[0]).startswith('# '), 'the first cell is the title'
    banners = [i for i, c in enumerate(cells) if c['cell_type'] == 'markdown' and _src(c).startswith('> **In the shipped model**')]
    assert banners == [1], f"one banner, right after the title; found it in cells {banners}"
    assert _src(cells[1]) == shipped_banner(path.stem), "stale banner: run python tools/chapter_heads.py"
    if path.stem in APPENDICES: return
    first_code = next(i for i, c in enumerate(cells) if c['cell_type'] == 'code')
    intro = _src(cells[2])
    assert first_code > 2 and cells[2]['cell_type'] == 'markdown', "the intuition comes before the first code cell"
    eq, fig = intro.find('$$'), intro.find('](../media/chapters/')
    assert 0 < eq < fig, "the intuition, then the equation, then the figure"
    name = re.search(r'\]\(\.\./media/chapters/([^)]+)\)', intro)[1]
    first_png = next(base64.b64decode(''.join(o['data']['image/png'])) for c in cells if c['cell_type'] == 'code'
                     for o in c.get('outputs', []) if 'image/png' in o.get('data', {}))
    assert (ROOT / 'media' / 'chapters' / name).read_bytes() == first_png, "stale figure: run python tools/chapter_heads.py"
