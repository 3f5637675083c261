"""Execute a notebook in place in a fresh kernel, skipping its `#| slow` cells (their stored outputs are kept).

    .venv/bin/python tools/run_nb_partial.py nbs/06_eval.ipynb

For chapters whose slow cells rewrite shipped files or run for a long time (06 retrains the toon FD
network); `tools/run_nb.sh` runs every cell. Clean and export afterwards (`nbdev-clean`, `nbdev-export`).
"""
import os, sys, time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

root = Path(__file__).resolve().parent.parent
if 'TORCH_HOME' not in os.environ and (root.parent / 'shared' / 'torch').is_dir(): os.environ['TORCH_HOME'] = str(root.parent / 'shared' / 'torch')
for p in sys.argv[1:]:
    nb = nbformat.read(p, as_version=4)
    client = NotebookClient(nb, timeout=1200, kernel_name='python3', resources={'metadata': {'path': str(Path(p).parent)}})
    start = time.time()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code': continue
            if cell.source.lstrip().startswith('#| slow'): print(f'{p} cell {i}: slow, kept as stored'); continue
            t = time.time()
            client.execute_cell(cell, i)
            print(f'{p} cell {i}: {time.time() - t:.1f} s', flush=True)
        client.set_widgets_metadata()
    nbformat.write(nb, p)
    print(f'{p}: {time.time() - start:.0f} s')
