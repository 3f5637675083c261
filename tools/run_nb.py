"""Execute notebooks in place in a fresh kernel, top to bottom, skipping cells flagged with any of `--skip`
(their stored outputs are kept), then clean them. Usage: python tools/run_nb.py nbs/06_eval.ipynb [--skip slow gpu]"""
import argparse, re, sys, time
import nbformat
from nbclient import NotebookClient

ap = argparse.ArgumentParser()
ap.add_argument('notebooks', nargs='+')
ap.add_argument('--skip', nargs='*', default=[], help='cell flags to skip, e.g. slow gpu')
a = ap.parse_args()
for path in a.notebooks:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name='python3', resources={'metadata': {'path': str(__import__('pathlib').Path(path).parent)}})
    start = time.time()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code': continue
            flags = re.findall(r'^#\|\s*(\w+)\s*$', cell.source, flags=re.M)
            if any(f in a.skip for f in flags): continue
            client.execute_cell(cell, i)
    print(f'{path}: {time.time() - start:.0f} s', flush=True)
    nbformat.write(nb, path)
