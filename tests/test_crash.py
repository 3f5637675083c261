"""Crashes lose nothing: a run killed with SIGKILL five times (once in the middle of a checkpoint write) and resumed each
time ends with the same weights as a run never interrupted; a full disk while saving, and NaN in a loss, stop training
with one line and leave the last good checkpoint as it was."""
import errno, hashlib, os, random, signal, subprocess, sys, time

import pandas as pd
import pytest
import torch

from stillframes.cli import train_cli
from stillframes.train import Trainer, TrainConfig

ARGS = ['size=32', 'data.n_clips=8', 'optim.batch_size=2', 'optim.warmup=4', 'log.every=1', 'log.sample_every=0', 'log.ckpt_every=2',
        'loss.pl_weight=2.0', 'loss.pl_every=2', 'loss.r1_gamma=10.0', 'loss.r1_every=2', 'log.tensorboard=False']
STEPS = 24

# The training command, with checkpoint writes slowed down (when SLOW_SAVE names a marker file) so that a test can kill
# the process while a write is under way: the marker exists from the first written block to the end of the write.
RUNNER = '''
import os, sys, time, torch
from pathlib import Path
marker = os.environ.get('SLOW_SAVE')
if marker:
    real = torch.save
    class Slow:
        def __init__(self, f): self.f, self.n = f, 0
        def write(self, b):
            self.n += 1
            if self.n == 2: Path(marker).touch(); time.sleep(0.4)
            return self.f.write(b)
        def __getattr__(self, k): return getattr(self.f, k)
    def slow_save(obj, f, *a, **k):
        try: real(obj, Slow(f), *a, **k)
        finally: Path(marker).unlink(missing_ok=True)
    torch.save = slow_save
from stillframes.cli import train_cli
train_cli(sys.argv[1:])
'''


def cmd(out, *extra):
    return [sys.executable, '-c', RUNNER, '--out', str(out), '--steps', str(STEPS), '--no-progress', '--set', *ARGS, *extra]


def weights_digest(ckpt) -> str:
    "Hash of every weight and buffer of the model, its EMA and both discriminators in a checkpoint file."
    ck = torch.load(ckpt, weights_only=False)
    h = hashlib.sha256()
    for key in ('model', 'ema', 'D_img', 'D_seq'):
        for k, v in sorted(ck[key].items()): h.update(k.encode()); h.update(v.cpu().numpy().tobytes())
    return h.hexdigest()


def last_logged_step(out) -> int:
    try: lines = (out / 'metrics.csv').read_text().splitlines()[1:]
    except FileNotFoundError: return 0
    return int(lines[-1].split(',')[0]) if lines else 0


def test_killed_five_times_resumes_to_the_same_weights(tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'STILLFRAMES_CACHE': str(tmp_path / 'cache')}
    straight = subprocess.run(cmd(tmp_path / 'straight'), env=env, capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    out, marker, rng = tmp_path / 'killed', tmp_path / 'writing', random.Random(0)
    ckpt, steps_seen = out / 'checkpoint.pt', []
    for kill in range(5):
        during_write = kill == 2
        before = torch.load(ckpt, weights_only=False)['step'] if ckpt.exists() else 0
        inode = ckpt.stat().st_ino if ckpt.exists() else None
        saves = rng.randint(1, 2)                                # a random moment: a random time after 1 or 2 saves ...
        proc = subprocess.Popen(cmd(out, *(['--resume'] if kill else [])), env={**env, 'SLOW_SAVE': str(marker)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None:
                if during_write and marker.exists(): break      # ... or, once, in the middle of a checkpoint write
                now = ckpt.stat().st_ino if ckpt.exists() else None
                if now != inode: inode, saves = now, saves - 1  # each save renames a new file over the checkpoint
                if not during_write and saves == 0: time.sleep(rng.uniform(0, 0.3)); break
                time.sleep(0.01)
            assert proc.poll() is None, f"the run ended before kill {kill}: {proc.stderr.read()}"
            if during_write: assert list(out.glob('checkpoint.pt.*.tmp')), "not killed during a write"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill(); proc.wait()
        marker.unlink(missing_ok=True)
        # every checkpoint on disk loads, and the count never goes back
        step = torch.load(ckpt, weights_only=False)['step']
        assert step >= before and step % 2 == 0 and (step > before or during_write), (before, step)
        Trainer(TrainConfig.tiny(**{k: eval(v) for k, v in (a.split('=') for a in ARGS)}, **{'optim.steps': STEPS}), device='cpu').load(ckpt)
        steps_seen.append(step)
    r = subprocess.run(cmd(out, '--resume'), env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert not list(out.glob('*.tmp'))                      # ... which the resumed run removes
    assert torch.load(ckpt, weights_only=False)['step'] == STEPS
    assert steps_seen == sorted(steps_seen) and 0 < steps_seen[-1] < STEPS, steps_seen
    logged = pd.read_csv(out / 'metrics.csv').step.tolist()
    assert logged == list(range(1, STEPS + 1))
    assert weights_digest(ckpt) == weights_digest(tmp_path / 'straight' / 'checkpoint.pt')
    a, b = [pd.read_csv(d / 'metrics.csv').drop(columns=['time_s', 'img_per_s']) for d in (tmp_path / 'straight', out)]
    pd.testing.assert_frame_equal(a, b)


def _run_cli(argv, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as e: train_cli(argv)
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    return e.value.code, err


def _short_run(tmp_path, steps):
    return ['--out', str(tmp_path / 'run'), '--steps', str(steps), '--no-progress', '--set', *ARGS]


def test_full_disk_while_saving_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('STILLFRAMES_CACHE', str(tmp_path / 'cache'))
    train_cli(_short_run(tmp_path, 2))
    ckpt = tmp_path / 'run' / 'checkpoint.pt'
    before = ckpt.read_bytes()
    real = torch.save
    def full_disk(obj, f, *a, **k):       # half the checkpoint reaches the disk, then the disk is full
        real({'half': torch.zeros(1000)}, f)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(torch, 'save', full_disk)
    code, err = _run_cli(_short_run(tmp_path, 4) + ['--resume'], capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith('stillframes-train: error: ') and str(ckpt) in err[0] and 'No space left on device' in err[0], err
    assert ckpt.read_bytes() == before
    assert not list(ckpt.parent.glob('*.tmp'))
    monkeypatch.undo()
    monkeypatch.setenv('STILLFRAMES_CACHE', str(tmp_path / 'cache'))
    train_cli(_short_run(tmp_path, 4) + ['--resume'])         # with space again, the run continues from step 2
    assert torch.load(ckpt, weights_only=False)['step'] == 4


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_loss_stops_the_cli_and_keeps_the_last_good_checkpoint(bad, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('STILLFRAMES_CACHE', str(tmp_path / 'cache'))
    real = Trainer.train_step
    def poisoned(self, batch):             # the clip of step 5 holds a non-finite pixel
        if self.step == 4: batch = torch.full_like(batch, bad) if torch.is_tensor(batch) else [torch.full_like(batch[0], bad), *batch[1:]]
        return real(self, batch)
    monkeypatch.setattr(Trainer, 'train_step', poisoned)
    code, err = _run_cli(_short_run(tmp_path, 8), capsys)
    ckpt = tmp_path / 'run' / 'checkpoint.pt'
    assert code == 1 and len(err) == 1, err
    assert 'step 4: non-finite loss' in err[0] and f'last good checkpoint: {ckpt}' in err[0], err
    saved = torch.load(ckpt, weights_only=False)
    assert saved['step'] == 4 and all(torch.isfinite(v).all() for v in saved['model'].values() if v.is_floating_point())
