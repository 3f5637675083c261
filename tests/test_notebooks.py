"""Run every chapter in `nbs/` the way `nbdev-test` does: one pytest test per notebook, cells flagged
`notest`, `slow` or `gpu` (the `tst_flags` in pyproject.toml) skipped."""
import os
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parent.parent / 'nbs'
FLAGS = ['notest', 'slow', 'gpu']


@pytest.mark.parametrize('nb', sorted(p.name for p in NBS.glob('*.ipynb')))
def test_notebook(nb, tmp_path, monkeypatch):
    from nbdev.test import test_nb
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    ok, secs = test_nb(NBS / nb, skip_flags=FLAGS, showerr=True, profile=False)
    assert ok, f'{nb} failed; the traceback is printed above'
