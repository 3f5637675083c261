"""Numbers the chapters' prose marks as claims, `<span class="claim">19.52</span>`, must be shown by an output of the same
chapter: some number printed in a code cell's output (text, table, markdown) rounds to the claim at the claim's own
precision, sign aside (19.52 matches 19.5213, 20.8 matches 20.84; 0.8 does not match 0.86). The span renders as the plain number in
JupyterLab and in the docs."""
import json, re
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parent.parent / 'nbs'
CHAPTERS = sorted(NBS.glob('[0-9]*.ipynb'))
CLAIM = re.compile(r'<span class="claim">([^<]*)</span>')
NUMBER = re.compile(r'[-+]?\d+(?:\.\d+)?')


def output_numbers(cells) -> list:
    "Every number in the outputs of the code cells."
    parts = []
    for c in cells:
        for o in c.get('outputs', []) if c['cell_type'] == 'code' else []:
            if 'text' in o: parts.append(''.join(o['text']))
            for kind in ('text/plain', 'text/markdown', 'text/html'):
                if kind in o.get('data', {}): parts.append(''.join(o['data'][kind]))
    return [float(x) for x in NUMBER.findall('\n'.join(parts))]


def shown(claim:str, numbers:list) -> bool:
    "Whether a number of `numbers` rounds to `claim` at the claim's precision (its count of decimals)."
    decimals = len(claim.split('.')[1]) if '.' in claim else 0
    value, half = float(claim), 0.5 * 10 ** -decimals + 1e-12
    return any(abs(abs(x) - abs(value)) <= half for x in numbers)


def test_shown_rounds_at_the_claims_precision():
    assert shown('19.52', [19.5213]) and shown('20.8', [20.84]) and shown('0.18', [0.1799])
    assert not shown('0.8', [0.86]) and not shown('19.52', [19.53]) and not shown('3', [3.6])


def claims_not_shown(cells) -> list:
    "(cell, claim) for each marked claim that no output of `cells` shows."
    numbers = output_numbers(cells)
    claims = [(i, m.strip()) for i, c in enumerate(cells) if c['cell_type'] == 'markdown' for m in CLAIM.findall(''.join(c['source']))]
    for i, claim in claims:
        assert NUMBER.fullmatch(claim), f"cell {i}: a claim holds one number, got {claim!r}"
    return [(i, claim) for i, claim in claims if not shown(claim, numbers)]


def test_a_claim_without_its_output_is_caught():
    prose = {'cell_type': 'markdown', 'source': ['PSNR <span class="claim">19.52</span> and <span class="claim">0.841</span>']}
    out = {'cell_type': 'code', 'source': [], 'outputs': [{'output_type': 'stream', 'text': ['psnr 19.60 ssim 0.8412']}]}
    assert claims_not_shown([prose, out]) == [(0, '19.52')]


@pytest.mark.parametrize('path', CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_marked_claim_is_an_output_of_its_chapter(path):
    missing = claims_not_shown(json.loads(path.read_text())['cells'])
    assert not missing, f"{path.name}: claims no output of the chapter shows (cell, number): {missing}"
