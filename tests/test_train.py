"""Training: one step, exact resumption, config mismatch, a killed run resumed, and 2-process `torchrun` data parallelism."""
import hashlib, math, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest
import torch

from stillframes.train import Trainer, TrainConfig, clip_dataset, NonFiniteLoss, LOSS_NAMES

ARGS = ['size=32', 'data.n_clips=8', 'optim.batch_size=2', 'optim.warmup=2', 'log.every=1', 'log.sample_every=0',
        'loss.pl_weight=2.0', 'loss.pl_every=2', 'loss.r1_gamma=10.0', 'loss.r1_every=2']


def small_cfg(**kw):
    "Tiny preset at 32 px, 2 clips per batch, every regulariser on at short intervals."
    kw = {k: eval(v) for k, v in (a.split('=') for a in ARGS)} | kw
    return TrainConfig.tiny(**kw)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv('STILLFRAMES_CACHE', str(tmp_path_factory.getbasetemp() / 'cache'))


@pytest.fixture
def ds():
    return clip_dataset(small_cfg())


def params_equal(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_train_step_finite_and_changes_parameters(ds):
    tr = Trainer(small_cfg(**{'optim.warmup': 0}), device='cpu')
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    g0 = [p.detach().clone() for p in tr.model.parameters()]
    d0 = [p.detach().clone() for p in tr.D_img.parameters()] + [p.detach().clone() for p in tr.D_seq.parameters()]
    logs = tr.train_step(batch)
    core = {'g_total', 'rec', 'content', 'temporal', 'g_img', 'g_seq', 'd_total', 'd_img', 'd_ssl', 'd_seq'}
    assert core <= set(logs) <= set(LOSS_NAMES) - {'gp'}, sorted(logs)
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values()), logs
    assert all(not torch.equal(p, q) for p, q in zip(tr.model.parameters(), g0) if p.requires_grad)
    # every D weight moves; a patch head's bias can get an exactly zero hinge gradient (as many real as fake patches active)
    assert all(not torch.equal(p, q) for p, q in zip([*tr.D_img.parameters(), *tr.D_seq.parameters()], d0) if p.ndim > 1)
    assert not params_equal(tr.ema, Trainer(small_cfg(), device='cpu').ema)


def test_non_finite_loss_stops_before_update(ds):
    tr = Trainer(small_cfg(), device='cpu')
    before = [p.detach().clone() for p in tr.model.parameters()]
    with pytest.raises(NonFiniteLoss, match='non-finite loss'):
        tr.train_step(torch.full((2, 8, 3, 32, 32), float('nan')))
    assert all(torch.equal(p, q) for p, q in zip(tr.model.parameters(), before))


def test_resume_is_bit_for_bit(ds, tmp_path):
    straight = Trainer(small_cfg(), tmp_path / 'a', 'cpu')
    straight.fit(6, data=ds, progress=False)
    first = Trainer(small_cfg(), tmp_path / 'b', 'cpu')
    first.fit(3, data=ds, progress=False)
    first.save()
    resumed = Trainer(small_cfg(), tmp_path / 'b', 'cpu').load(tmp_path / 'b' / 'checkpoint.pt')
    assert resumed.step == 3
    resumed.fit(6, data=ds, progress=False)
    for x, y in [(straight.model, resumed.model), (straight.ema, resumed.ema), (straight.D_img, resumed.D_img), (straight.D_seq, resumed.D_seq)]:
        assert params_equal(x, y)
        assert all(torch.equal(u, v) for u, v in zip(x.buffers(), y.buffers()))
    a, b = [pd.read_csv(tmp_path / d / 'metrics.csv').drop(columns=['time_s', 'img_per_s']) for d in 'ab']
    pd.testing.assert_frame_equal(a, b)
    assert a.step.tolist() == [1, 2, 3, 4, 5, 6]


def test_checkpoint_from_another_config_is_refused(ds, tmp_path):
    tr = Trainer(small_cfg(), device='cpu')
    tr.save(tmp_path / 'c.pt')
    with pytest.raises(RuntimeError) as e:
        Trainer(small_cfg(size=64, **{'loss.gan': 'bce'}), device='cpu').load(tmp_path / 'c.pt')
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and 'size: 32 != 64' in msg and "loss.gan: 'hinge' != 'bce'" in msg
    Trainer(small_cfg(**{'optim.steps': 99, 'log.every': 7}), device='cpu').load(tmp_path / 'c.pt')


def _train_cmd(out, steps, *extra):
    code = 'from stillframes.cli import train_cli; import sys; train_cli(sys.argv[1:])'
    return [sys.executable, '-c', code, '--out', str(out), '--steps', str(steps), '--no-progress',
            '--set', *ARGS, 'log.ckpt_every=2', *extra]


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    out, ckpt = tmp_path / 'run', tmp_path / 'run' / 'checkpoint.pt'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen(_train_cmd(out, 1000), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists() and torch.load(ckpt, weights_only=False)['step'] >= 4: break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill(); proc.wait()
    saved = torch.load(ckpt, weights_only=False)
    step = saved['step']
    assert step >= 4 and step % 2 == 0
    # SIGKILL cannot be caught: a kill that lands inside a save leaves that save's temporary file; the checkpoint stays whole
    assert all(p.name.startswith('checkpoint.pt.') for p in out.glob('*.tmp'))
    tr = Trainer(small_cfg(), device='cpu').load(ckpt)
    assert tr.step == step
    (out / 'checkpoint.pt.abcd_123.tmp').write_bytes(b'partial')          # as a kill inside a save leaves (mkstemp's name shape)
    r = subprocess.run(_train_cmd(out, step + 2, '--resume'), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert torch.load(ckpt, weights_only=False)['step'] == step + 2
    assert not list(out.glob('*.tmp'))                                    # the resumed run cleared what the kill left
    steps = [int(l.split(',')[0]) for l in (out / 'metrics.csv').read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == step + 2


DDP_SCRIPT = '''
import hashlib, sys, torch, torch.distributed as dist
from pathlib import Path
from stillframes.train import Trainer, build_config
out = Path(sys.argv[1])
tr = Trainer(build_config('tiny', steps=3, overrides=sys.argv[2:]), out, 'cpu')
assert tr.world == 2, tr.world
tr.fit(progress=False)
h = hashlib.sha256()
for mod in (tr.model, tr.ema, tr.D_img, tr.D_seq):
    for p in mod.parameters(): h.update(p.detach().cpu().numpy().tobytes())
(out / f'rank{tr.rank}.sha').write_text(h.hexdigest())
first = hashlib.sha256(next(tr.model.parameters()).detach().numpy().tobytes()).hexdigest()
(out / f'rank{tr.rank}.first').write_text(first)
dist.destroy_process_group()
'''


def test_torchrun_two_processes_keep_identical_weights(tmp_path):
    torchrun = shutil.which('torchrun') or str(Path(sys.executable).parent / 'torchrun')
    if not Path(torchrun).exists(): pytest.skip('torchrun not found')
    script = tmp_path / 'ddp.py'
    script.write_text(DDP_SCRIPT)
    out = tmp_path / 'ddp'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([torchrun, '--standalone', '--nproc_per_node', '2', str(script), str(out), *ARGS],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / 'rank0.sha').read_text() == (out / 'rank1.sha').read_text()
    assert torch.load(out / 'checkpoint.pt', weights_only=False)['world'] == 2
    ref = Trainer(small_cfg(), device='cpu')
    assert (out / 'rank0.first').read_text() != hashlib.sha256(next(ref.model.parameters()).detach().numpy().tobytes()).hexdigest()


@pytest.mark.parametrize('kw', [{'generator.refiner': False}, {'path.timing': 0}, {'loss.select': 0.0}, {'motion.freeze': False},
                                {'motion.init': 'random', 'motion.freeze': False}, {'discriminator.finetune_last': 2},
                                {'path.method': 'motion', 'encoder.backbone': 'resnet18', 'encoder.freeze': True}])
def test_ablations_train(ds, kw):
    tr = Trainer(small_cfg(**{'optim.warmup': 0, 'loss.pl_every': 1, **kw}), device='cpu')
    logs = tr.train_step(torch.utils.data.default_collate([ds[0], ds[1]]))
    assert all(math.isfinite(v) for v in logs.values()), logs


def test_freezed_fine_tuning_keeps_early_d_stages(ds, tmp_path):
    src = Trainer(small_cfg(), tmp_path / 'src', 'cpu')
    src.fit(1, data=ds, progress=False)
    tr = Trainer(small_cfg(**{'optim.warmup': 0, 'data.style': 'B', 'discriminator.finetune_last': 1}), tmp_path / 'ft', 'cpu')
    tr.init_from(tmp_path / 'src' / 'checkpoint.pt')
    assert tr.step == 0 and params_equal(tr.model, src.model) and params_equal(tr.D_img, src.D_img)
    frozen = {n: p.detach().clone() for n, p in tr.D_img.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in tr.D_img.named_parameters() if p.requires_grad}
    assert frozen and trainable
    tr.train_step(torch.utils.data.default_collate([ds[0], ds[1]]))
    assert all(torch.equal(p, frozen[n]) for n, p in tr.D_img.named_parameters() if n in frozen)
    assert any(not torch.equal(p, trainable[n]) for n, p in tr.D_img.named_parameters() if n in trainable)
    other = Trainer(small_cfg(**{'generator.width': 8}), None, 'cpu')
    with pytest.raises(RuntimeError, match='another architecture.*generator.width'):
        other.init_from(tmp_path / 'src' / 'checkpoint.pt')


def test_console_scripts_exit_zero(tmp_path):
    exe = Path(sys.executable).parent / 'stillframes-animate'
    if not exe.exists(): pytest.skip('console scripts not installed (pip install -e .)')
    r = subprocess.run([str(exe), '--example', str(tmp_path / 'ex.gif'), '--frames', '4', '--device', 'cpu'], capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / 'ex.gif').exists(), r.stderr[-500:]


def test_non_finite_gradient_with_a_finite_loss_stops_before_update(ds):
    tr = Trainer(small_cfg(**{'optim.warmup': 0}), device='cpu')
    before = [p.detach().clone() for p in tr.model.parameters()]
    d_before = [p.detach().clone() for p in tr.D_img.parameters()]
    p0 = next(p for p in tr.model.parameters() if p.requires_grad)
    p0.register_hook(lambda g: torch.full_like(g, float('nan')))
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    with pytest.raises(NonFiniteLoss, match='non-finite gradient'):
        tr.train_step(batch)
    assert all(torch.equal(p, q) for p, q in zip(tr.model.parameters(), before))
    assert not all(torch.equal(p, q) for p, q in zip(tr.D_img.parameters(), d_before))   # the D step before it went through
