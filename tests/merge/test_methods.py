"""Each merge method against its REFERENCES.md formula, computed here with numpy."""

import itertools

import numpy as np
import pytest

from kfuse.merge.methods import METHODS, get_method
from kfuse.merge.methods.dare import dare_linear, dare_ties
from kfuse.merge.methods.linear import linear
from kfuse.merge.methods.model_stock import model_stock
from kfuse.merge.methods.slerp import slerp
from kfuse.merge.methods.task_arithmetic import task_arithmetic
from kfuse.merge.methods.ties import ties


@pytest.fixture
def tensors(rng):
    base = rng.normal(size=(6, 5))
    models = [base + rng.normal(scale=0.3, size=(6, 5)) for _ in range(3)]
    return base, models


def test_linear(tensors):
    _, models = tensors
    w = [0.2, 1.0, 3.0]
    expected = (0.2 * models[0] + 1.0 * models[1] + 3.0 * models[2]) / 4.2
    np.testing.assert_allclose(linear(models, weight=w), expected)
    np.testing.assert_allclose(linear(models, weight=w, normalize=False), expected * 4.2)


def test_slerp_formula_and_fallback(tensors):
    _, (a, b, _) = tensors
    t = 0.3
    cos = np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b)
    theta = np.arccos(cos)
    expected = np.sin((1 - t) * theta) / np.sin(theta) * a + np.sin(t * theta) / np.sin(theta) * b
    np.testing.assert_allclose(slerp([a, b], t=t), expected)
    near = a * 2.0 + 1e-6
    np.testing.assert_allclose(slerp([a, near], t=t), 0.7 * a + 0.3 * near)
    np.testing.assert_allclose(slerp([a, b], t=0.0), a, atol=1e-12)
    np.testing.assert_allclose(slerp([a, b], t=1.0), b, atol=1e-12)


def test_task_arithmetic(tensors):
    base, models = tensors
    w = [1.0, 0.5, 0.25]
    expected = base + 0.7 * sum(wi * (m - base) for wi, m in zip(w, models, strict=False))
    np.testing.assert_allclose(task_arithmetic(models, base, weight=w, **{"lambda": 0.7}), expected)


def _ties_reference(base, models, w, density, lam=1.0):
    trimmed = []
    for m, d in zip(models, density, strict=False):
        tau = (m - base).ravel()
        k = int(d * tau.size)
        keep = np.zeros(tau.size, bool)
        keep[np.argsort(-np.abs(tau))[:k]] = True
        trimmed.append(np.where(keep, tau, 0).reshape(base.shape))
    d = np.stack([wi * t for wi, t in zip(w, trimmed, strict=False)])
    sign = np.where(d.sum(0) >= 0, 1, -1)
    agree = np.sign(d) == sign
    num = (d * agree).sum(0)
    den = (np.array(w)[:, None, None] * agree).sum(0)
    den[den == 0] = 1
    return base + lam * num / den


def test_ties(tensors):
    base, models = tensors
    w, density = [1.0, 2.0, 0.5], [0.5, 0.3, 0.8]
    got = ties(models, base, weight=w, density=density, **{"lambda": 0.9})
    np.testing.assert_allclose(got, _ties_reference(base, models, w, density, 0.9))


def test_ties_density_one_is_sign_elected_mean():
    base = np.zeros(3)
    models = [np.array([1.0, -1.0, 2.0]), np.array([3.0, 2.0, -1.0])]
    got = ties(models, base, weight=[1.0, 1.0], density=[1.0, 1.0])
    np.testing.assert_allclose(got, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("consensus", [False, True])
def test_dare_same_mask(tensors, consensus):
    base, models = tensors
    w, density = [1.0, 0.5, 2.0], [0.4, 0.6, 0.9]
    rng = np.random.default_rng(123)
    masks = [rng.random(base.shape) < d for d in density]
    # mergekit's rescale: the kept entries carry the task vector's whole L1 norm
    taus = [np.where(mk, m - base, 0) * np.abs(m - base).sum() / np.abs(np.where(mk, m - base, 0)).sum()
            for m, mk in zip(models, masks, strict=True)]
    if consensus:
        dd = np.stack([wi * t for wi, t in zip(w, taus, strict=False)])
        agree = np.sign(dd) == np.where(dd.sum(0) >= 0, 1, -1)
        den = (np.array(w)[:, None, None] * agree).sum(0)
        den[den == 0] = 1
        expected = base + (dd * agree).sum(0) / den
        got = dare_ties(models, base, weight=w, density=density, normalize=True,
                        rng=np.random.default_rng(123))
        unnormalised = dare_ties(models, base, weight=w, density=density,
                                 rng=np.random.default_rng(123))
        np.testing.assert_allclose(unnormalised, base + (dd * agree).sum(0))
    else:
        expected = base + sum(wi * t for wi, t in zip(w, taus, strict=False))
        got = dare_linear(models, base, weight=w, density=density, rng=np.random.default_rng(123))
    np.testing.assert_allclose(got, expected)


def test_dare_density_one_is_task_arithmetic(tensors):
    base, models = tensors
    got = dare_linear(models, base, weight=[1, 1, 1], density=[1, 1, 1],
                      rng=np.random.default_rng(0))
    np.testing.assert_allclose(got, base + sum(m - base for m in models))


def test_model_stock(tensors):
    base, models = tensors
    taus = [(m - base).ravel() for m in models]
    cos = np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b)
                   for a, b in itertools.combinations(taus, 2)])
    t = 3 * cos / (1 + 2 * cos)
    expected = t * np.mean(models, axis=0) + (1 - t) * base
    np.testing.assert_allclose(model_stock(models, base), expected)


def test_registry_names_and_errors():
    assert set(METHODS) >= {"linear", "slerp", "task_arithmetic", "ties", "dare_linear",
                            "dare_ties", "model_stock", "breadcrumbs", "breadcrumbs_ties",
                            "della", "della_linear", "sce", "nuslerp", "multislerp", "karcher",
                            "nearswap", "arcee_fusion", "passthrough"}
    with pytest.raises(ValueError, match="Did you mean 'ties'"):
        get_method("tie")
