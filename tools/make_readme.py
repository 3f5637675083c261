"""Render `nbs/index.ipynb` to `README.md` without Quarto (which `nbdev-readme` needs and which cannot be
installed offline): markdown cells verbatim, code cells as fenced blocks with their text or markdown
outputs, `#| hide` cells left out, `#| echo: false` cells shown by their output alone, links to `../` rewritten to the repository root."""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _src(cell): return ''.join(cell['source'])


def render(nb_path=ROOT / 'nbs' / 'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for cell in nb['cells']:
        src = _src(cell)
        if re.search(r'^#\|\s*hide\b', src, re.M): continue
        if cell['cell_type'] == 'markdown':
            out.append(src.replace('](../', ']('))
            continue
        code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
        echo = not re.search(r'^#\|\s*echo:\s*false', src, re.M)
        if code and echo: out.append(f'```python\n{code}\n```')
        for o in cell.get('outputs', []):
            data = o.get('data', {})
            if 'text/markdown' in data: out.append(''.join(data['text/markdown']))
            elif 'text/plain' in data: out.append('```\n' + ''.join(data['text/plain']) + '\n```')
            elif o.get('output_type') == 'stream': out.append('```\n' + ''.join(o['text']) + '\n```')
    return '\n\n'.join(s.strip('\n') for s in out) + '\n'


if __name__ == '__main__':
    (ROOT / 'README.md').write_text(render())
    print('wrote README.md')
