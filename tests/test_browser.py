"""The latent-walk widget in a real browser: JupyterLab on 127.0.0.1 with a token, a small notebook opened in headless
Chromium (Debian's, at /usr/bin/chromium) driven by Playwright, its cells run, the `t` slider and a PCA slider moved, and
the frame on screen compared before and after each move. Screenshots go to $STILLFRAMES_SCREENSHOTS (default: the test's
temporary folder). Skipped, with the reason, where Chromium or Playwright is missing."""
import json, os, secrets, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path

import pytest

CHROMIUM = '/usr/bin/chromium'
CELLS = [
    "from stillframes.model import load_model\nfrom stillframes.train import example_keyframes\nfrom stillframes.eval import LatentWalk\n"
    "model = load_model()\na, b = example_keyframes(64)\nwalk = LatentWalk(model, a, b, n_frames=6, n_dirs=2, n_pca=40)\nwalk.widget",
]


def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    if not Path(CHROMIUM).exists(): pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (.ci/run does)")
    pytest.importorskip('playwright.sync_api', reason="Playwright's Python package is not installed (pip install -e '.[dev]')")
    nb = {'cells': [{'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {}, 'outputs': [], 'source': src}
                    for i, src in enumerate(CELLS)],
          'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}
    (tmp_path / 'walk.ipynb').write_text(json.dumps(nb))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(tmp_path / 'cfg'), 'JUPYTER_DATA_DIR': str(tmp_path / 'data'),
           'JUPYTER_RUNTIME_DIR': str(tmp_path / 'rt'), 'IPYTHONDIR': str(tmp_path / 'ipy'), 'OMP_NUM_THREADS': '1'}
    log = open(tmp_path / 'lab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={tmp_path}', '--allow-root',
                             '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=2); break
            except OSError:
                if proc.poll() is not None or time.time() > deadline: pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        with pytest.raises(urllib.error.HTTPError):           # the token is required
            urllib.request.urlopen(f'{base}/api/contents', timeout=5)
        yield base, token, tmp_path
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()


def test_latent_walk_widget_in_chromium(lab):
    from playwright.sync_api import sync_playwright
    base, token, tmp = lab
    shots = Path(os.environ.get('STILLFRAMES_SCREENSHOTS', tmp / 'shots')); shots.mkdir(parents=True, exist_ok=True)
    args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync']
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        try: _drive(page, base, token, shots)
        except Exception:
            page.screenshot(path=str(shots / 'failure.png')); raise
        finally: browser.close()


def _drive(page, base, token, shots):
    "Open the notebook, run its cell, move two sliders; assert the frame on screen changes each time."
    page.goto(f'{base}/lab/tree/walk.ipynb?token={token}', timeout=120_000)
    page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=120_000)
    page.get_by_text('Python 3 (ipykernel) | Idle').wait_for(timeout=120_000)   # the kernel is up
    frame = page.locator('.widget-image').first              # the big frame; the strip is the second image
    for attempt in range(3):                                 # a run sent while the kernel's session still connects can be dropped
        page.click('.jp-Notebook .jp-Cell .jp-InputArea-editor')
        page.keyboard.press('Control+Enter')                 # run the cell
        try: frame.wait_for(timeout=60_000); break
        except Exception:
            if attempt == 2: raise
    page.wait_for_function("() => { const i = document.querySelector('.widget-image'); return i && i.complete && i.naturalWidth > 0 }", timeout=60_000)

    def shown():
        return frame.screenshot()

    def move(index, presses, name):
        "Press the right arrow `presses` times on the handle of the `index`-th slider; wait until the frame on screen changes."
        before = shown()
        (shots / f'{name}_before.png').write_bytes(before)
        handle = page.locator('.widget-slider .noUi-handle').nth(index)
        handle.focus()
        for _ in range(presses): page.keyboard.press('ArrowRight')
        deadline = time.time() + 60
        while time.time() < deadline and shown() == before: time.sleep(0.25)
        after = shown()
        (shots / f'{name}_after.png').write_bytes(after)
        return before, after

    readout = lambda i: page.locator('.widget-slider .widget-readout').nth(i).inner_text()
    assert readout(0) == '0.50'
    b, a = move(0, 10, 't')                                  # t: 0.50 -> 0.60
    assert readout(0) == '0.60' and a != b, "the frame did not change when t moved"
    b, a = move(1, 20, 'pc1')                                # PC1: 0 -> +2.0 std
    assert readout(1) == '2.00' and a != b, "the frame did not change when PC1 moved"
    page.screenshot(path=str(shots / 'lab.png'))
