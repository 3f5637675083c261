"""The head of every chapter, rebuilt from the chapter itself and the shipped model:

1. the title cell;
2. the banner: what the chapter is for in the shipped model (`stillframes.model.shipped_banner`, read from `small.pt`);
3. the intuition and the paper's equation: the chapter's first markdown cell with a display equation, moved up here
   when only set-up code cells (`#| default_exp`, imports) stood before it;
4. a figure: the chapter's first drawn figure (its first PNG output), saved to media/chapters/<chapter>.png and shown
   at the end of that cell.

Then the first code cell. tests/test_chapters.py fails when a head is missing, out of order or stale.

    python tools/chapter_heads.py
"""
import base64, json, re
from pathlib import Path

from stillframes.model import shipped_banner

ROOT = Path(__file__).resolve().parent.parent
MARK = '> **In the shipped model**'
FIGURE = re.compile(r'\n\n!\[[^\]]*\]\(\.\./media/chapters/[^)]*\)\s*$')
APPENDICES = ('08_utils', '08a_checkpoints', '09_cli')     # helpers and command lines: no paper's equation to open with


def chapters() -> list: return sorted(p for p in (ROOT / 'nbs').glob('[0-9]*.ipynb'))
def _src(c) -> str: return ''.join(c['source'])
def _set(c, s:str): c['source'] = s.splitlines(keepends=True)


def first_figure(cells):
    "The first PNG output of the chapter's code cells, as bytes (or None)."
    for c in cells:
        for o in c.get('outputs', []) if c['cell_type'] == 'code' else []:
            if 'image/png' in o.get('data', {}): return base64.b64decode(''.join(o['data']['image/png']))


def rebuild(path:Path) -> list:
    nb = json.loads(path.read_text())
    cells = [c for c in nb['cells'] if not (c['cell_type'] == 'markdown' and _src(c).startswith(MARK))]
    cells.insert(1, {'cell_type': 'markdown', 'id': 'banner', 'metadata': {}, 'source': shipped_banner(path.stem).splitlines(keepends=True)})
    if path.stem not in APPENDICES:
        i = next(i for i, c in enumerate(cells) if i >= 2 and c['cell_type'] == 'markdown' and '$$' in _src(c))
        if all(c['cell_type'] == 'code' for c in cells[2:i]): cells.insert(2, cells.pop(i))   # past the set-up cells
        png = first_figure(cells)
        if png is not None:
            fig = ROOT / 'media' / 'chapters' / f'{path.stem}.png'
            fig.parent.mkdir(parents=True, exist_ok=True); fig.write_bytes(png)
            _set(cells[2], FIGURE.sub('', _src(cells[2])) + f"\n\n![The first figure this chapter draws, further down](../media/chapters/{path.stem}.png)")
    nb['cells'] = cells
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return cells


def main():
    for path in chapters():
        cells = rebuild(path)
        print(f"{path.name}: {' | '.join(_src(c)[:40].replace(chr(10), ' ') for c in cells[:4])}")


if __name__ == '__main__':
    main()
