"""Write each chapter's banner (what it is for in the shipped model, from `stillframes.model.shipped_banner`) into its
second cell, right after the title, replacing the one there. tests/test_chapters.py fails when a banner is stale.

    python tools/make_banners.py
"""
import json
from pathlib import Path

from stillframes.model import shipped_banner

ROOT = Path(__file__).resolve().parent.parent
MARK = '> **In the shipped model**'


def chapters() -> list: return sorted(p for p in (ROOT / 'nbs').glob('[0-9]*.ipynb'))


def main():
    for path in chapters():
        nb = json.loads(path.read_text())
        text = shipped_banner(path.stem)
        cell = {'cell_type': 'markdown', 'id': 'banner', 'metadata': {}, 'source': text.splitlines(keepends=True)}
        nb['cells'] = [c for c in nb['cells'] if not (c['cell_type'] == 'markdown' and ''.join(c['source']).startswith(MARK))]
        nb['cells'].insert(1, cell)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
        print(f"{path.name}: {text[:110]}...")


if __name__ == '__main__':
    main()
