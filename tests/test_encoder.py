"Encoder: offline random-init backbones, shapes, freezing, missing-weights error, content loss."
import time

import pytest
import torch

import stillframes.encoder as E
from stillframes.encoder import Encoder, load_backbone, content_loss, feature_distance, hub_file

BACKBONES = ['vgg16', 'resnet18', 'inception_v3']


@pytest.fixture(scope='module')
def x():
    torch.manual_seed(0)
    return torch.rand(2, 3, 64, 64) * 2 - 1


@pytest.fixture(scope='module')
def encoders():
    torch.manual_seed(0)
    return {b: Encoder(b, weights=None, z_dim=32) for b in BACKBONES}


@pytest.mark.parametrize('backbone', BACKBONES)
def test_forward_shapes_offline(encoders, x, backbone):
    enc = encoders[backbone]
    z = enc(x)
    assert z.shape == (2, 32) and torch.isfinite(z).all()
    feats = enc.features(x)
    assert len(feats) == len(enc.stages) and all(f.shape[0] == 2 for f in feats)
    assert feats[-1].shape[1] == enc.feat_dim


def test_inception_small_input_is_enlarged(encoders, x):
    enc = encoders['inception_v3']
    assert enc.preprocess(x).shape[-2:] == (75, 75)
    assert enc(torch.rand(2, 3, 32, 32) * 2 - 1).shape == (2, 32)


def test_feature_shapes_vgg(encoders, x):
    shapes = [tuple(f.shape[1:]) for f in encoders['vgg16'].features(x, ['conv4_3', 'conv1_2'])]
    assert shapes == [(512, 8, 8), (64, 64, 64)]


@pytest.mark.parametrize('backbone', BACKBONES)
def test_frozen_backbone_gets_no_gradient(encoders, x, backbone):
    enc = encoders[backbone]
    enc.zero_grad(set_to_none=True)
    enc(x).square().sum().backward()
    assert all(not p.requires_grad and p.grad is None for p in enc.stages.parameters())
    assert enc.head.weight.grad is not None and enc.head.weight.grad.abs().sum() > 0


def test_unfreeze_last_trains_only_last_stage(x):
    enc = Encoder('resnet18', weights=None, z_dim=16, unfreeze_last=True, pool='grid')
    enc(x).sum().backward()
    names = list(enc.stages)
    assert all(p.grad is not None for p in enc.stages[names[-1]].parameters())
    assert all(p.grad is None for n in names[:-1] for p in enc.stages[n].parameters())
    enc.train()
    assert enc.stages[names[-1]].training and not enc.stages[names[0]].training
    assert enc.head.in_features == 4 * 512


def test_unfrozen_backbone(x):
    enc = Encoder('resnet18', weights=None, z_dim=8, freeze=False)
    assert all(p.requires_grad for p in enc.parameters())


def test_missing_weights_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(E, '_can_reach', lambda url, timeout=3.0: False)
    expected = hub_file('https://download.pytorch.org/models/vgg16-397923af.pth')
    assert not expected.exists() and str(tmp_path) in str(expected)
    t = time.time()
    with pytest.raises(RuntimeError) as e: Encoder('vgg16')
    msg = str(e.value)
    assert time.time() - t < 10
    assert len(msg.splitlines()) == 1
    assert 'vgg16-397923af.pth' in msg and '$TORCH_HOME' in msg and str(expected.parent) in msg
    with pytest.raises(RuntimeError, match='resnet18-f37072fd.pth'): load_backbone('resnet18', 'DEFAULT', download=False)
    with pytest.raises(RuntimeError, match='inception_v3_google'): load_backbone('inception_v3', 'IMAGENET1K_V1', download=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match='unknown backbone'): Encoder('alexnet', weights=None)
    with pytest.raises(ValueError, match='unknown weights'): Encoder('vgg16', weights='NOPE')
    with pytest.raises(ValueError, match='pool must be'): Encoder('resnet18', weights=None, pool='max')


def test_bad_input_shape(encoders):
    with pytest.raises(ValueError, match=r'expected shape \(\*, 3, \*, \*\)'): encoders['resnet18'](torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match='unknown layer'): encoders['resnet18'].features(torch.zeros(1, 3, 64, 64), ['conv4_3'])


@pytest.mark.parametrize('backbone', ['vgg16', 'resnet18'])
def test_content_loss(encoders, x, backbone):
    enc = encoders[backbone]
    assert content_loss(x, x, enc).item() == 0
    y = x.flip(0).clone().requires_grad_()
    loss = content_loss(y, x, enc)
    assert loss.item() > 0
    loss.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='same shape'): content_loss(x, x[:1], enc)


def test_feature_distance(encoders, x):
    enc = encoders['vgg16']
    d0, d1 = feature_distance(x, x, enc), feature_distance(x, x.flip(0), enc)
    assert d0.shape == (2,) and torch.allclose(d0, torch.zeros(2))
    assert (d1 > 0).all()
