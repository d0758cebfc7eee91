"""Every merge method kfuse shares with mergekit, against mergekit 0.1.5's own code.

The same float64 tensors go to mergekit's registered method (``registry.get(name)`` called
on a ``TensorGroup``: the entry point its merge graph uses) and to kfuse's
(``apply_method``, which fills in kfuse's defaults as ``merge`` does); the results agree to
1e-6. Parameters left out on both sides compare the defaults too.

Random methods (dare_*, della*): mergekit draws its masks with ``torch.bernoulli``; the test
records the probabilities and the masks of those calls (the real draws, in order) and
replays the masks into kfuse through a ``Replay`` generator whose ``random(shape)`` is 0
where mergekit kept an entry and 1 where it dropped it, so kfuse's ``random(shape) < p``
draws the same masks. The recorded probabilities must equal kfuse's (``density`` for DARE,
``della_probabilities`` for DELLA): the mask distributions are the same, not only the draws.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mergekit")

from mergekit.merge_methods import registry  # noqa: E402
from mergekit.merge_methods.base import TensorGroup  # noqa: E402

from kfuse.merge.api import apply_method  # noqa: E402
from kfuse.merge.methods import METHODS, get_method  # noqa: E402
from kfuse.merge.methods.sparsify import della_probabilities  # noqa: E402

SHAPES = [(6, 5), (7,), (3, 4, 2)]


def mergekit_merge(name, models, base=None, **parameters):
    tensors = ([base] if base is not None else []) + list(models)
    group = TensorGroup.from_tensors([torch.from_numpy(np.array(t)) for t in tensors],
                                     base_index=0 if base is not None else None)
    (out,) = registry.get(name)([group], parameters=parameters)
    return out.numpy()


def kfuse_merge(name, models, base=None, model_parameters=None, rng=None, **parameters):
    model_parameters = model_parameters or [{} for _ in models]
    return apply_method(get_method(name), list(models), base, model_parameters, parameters,
                        rng=rng)


def check(got, expected):
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.fixture(params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def tensors(request):
    rng = np.random.default_rng(sum(request.param))
    base = rng.normal(size=request.param)
    return base, [base + rng.normal(scale=0.3, size=request.param) for _ in range(3)]


def test_linear(tensors):
    _, models = tensors
    w = [0.2, 1.0, 3.0]
    mp = [{"weight": v} for v in w]
    check(kfuse_merge("linear", models, model_parameters=mp),
          mergekit_merge("linear", models, weight=w))
    check(kfuse_merge("linear", models, model_parameters=mp, normalize=False),
          mergekit_merge("linear", models, weight=w, normalize=False))


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
def test_slerp(tensors, t):
    base, models = tensors
    check(kfuse_merge("slerp", models[:1], base, t=t), mergekit_merge("slerp", models[:1], base, t=t))
    near = base * 2.0 + 1e-9  # |cos| > 0.9995: both interpolate linearly
    check(kfuse_merge("slerp", [near], base, t=t), mergekit_merge("slerp", [near], base, t=t))


def test_task_arithmetic(tensors):
    base, models = tensors
    w = [1.0, 0.5, 0.25]
    mp = [{"weight": v} for v in w]
    check(kfuse_merge("task_arithmetic", models, base, mp, **{"lambda": 0.7}),
          mergekit_merge("task_arithmetic", models, base, weight=w, **{"lambda": 0.7}))


@pytest.mark.parametrize("name", ["ties", "breadcrumbs", "breadcrumbs_ties"])
@pytest.mark.parametrize("extra", [{}, {"rescale": True, "normalize": True, "lambda": 0.8},
                                   {"normalize": False}])
def test_magnitude_methods(tensors, name, extra):
    base, models = tensors
    w, density, gamma = [1.0, 2.0, 0.5], [0.5, 0.3, 0.8], [0.1, 0.0, 0.05]
    mp = [{"weight": a, "density": b} for a, b in zip(w, density, strict=True)]
    mk = {"weight": w, "density": density}
    if name != "ties":
        for entry, g in zip(mp, gamma, strict=True):
            entry["gamma"] = g
        mk["gamma"] = gamma
    check(kfuse_merge(name, models, base, mp, **extra), mergekit_merge(name, models, base, **mk, **extra))


@pytest.mark.parametrize("name", ["ties", "breadcrumbs"])
def test_density_rounding_keeps_one_entry(name):
    """int(density * size) is 0 here: mergekit's magnitude keeps one entry anyway, its
    breadcrumbs keeps none; kfuse follows both."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=(4, 5))
    models = [base + rng.normal(size=(4, 5)) for _ in range(2)]
    mp = [{"weight": 1.0, "density": 0.04}] * 2
    got = kfuse_merge(name, models, base, mp)
    check(got, mergekit_merge(name, models, base, weight=[1.0, 1.0], density=[0.04, 0.04]))
    changed = np.count_nonzero(got != base)
    if name == "breadcrumbs":
        assert changed == 0
    else:
        assert 1 <= changed <= 2


@pytest.mark.parametrize("filter_wise", [False, True])
def test_model_stock(tensors, filter_wise):
    base, models = tensors
    check(kfuse_merge("model_stock", models, base, filter_wise=filter_wise),
          mergekit_merge("model_stock", models, base, filter_wise=filter_wise))
    opposed = [base + 1.0, base - 1.0]  # cos = -1: 1 + (N - 1) cos = 0, the base is kept
    check(kfuse_merge("model_stock", opposed, base, filter_wise=filter_wise),
          mergekit_merge("model_stock", opposed, base, filter_wise=filter_wise))


class Replay:
    """A ``numpy.random.Generator`` stand-in that replays recorded keep-masks: ``random``
    is 0 where the mask keeps an entry and 1 where it drops it."""

    def __init__(self, masks):
        self.masks = list(masks)

    def random(self, shape):
        mask = self.masks.pop(0)
        assert mask.shape == tuple(shape)
        return np.where(mask, 0.0, 1.0)


@pytest.fixture
def bernoulli_record(monkeypatch):
    """Record every ``torch.bernoulli`` call mergekit makes: (probabilities, mask)."""
    calls, real = [], torch.bernoulli

    def recording(p, *args, **kwargs):
        mask = real(p, *args, **kwargs)
        calls.append((p.numpy().copy(), mask.numpy().astype(bool)))
        return mask

    monkeypatch.setattr(torch, "bernoulli", recording)
    torch.manual_seed(0)
    return calls


@pytest.mark.parametrize("name", ["dare_linear", "dare_ties", "della", "della_linear"])
@pytest.mark.parametrize("extra", [{}, {"rescale": False}, {"normalize": True, "lambda": 1.3}])
def test_random_methods_same_masks(tensors, bernoulli_record, name, extra):
    base, models = tensors
    w, density, epsilon = [1.0, 0.5, 2.0], [0.4, 0.6, 0.7], [0.1, 0.2, 0.25]
    mp = [{"weight": a, "density": b} for a, b in zip(w, density, strict=True)]
    mk = {"weight": w, "density": density}
    if name.startswith("della"):
        for entry, e in zip(mp, epsilon, strict=True):
            entry["epsilon"] = e
        mk["epsilon"] = epsilon
    expected = mergekit_merge(name, models, base, **mk, **extra)
    assert len(bernoulli_record) == len(models)
    for (p, _), m, d, e in zip(bernoulli_record, models, density, epsilon, strict=True):
        want = della_probabilities(m - base, d, e) if name.startswith("della") else np.full(m.shape, d)
        # mergekit draws in float32 on CPU, a 1-D tensor as one row of shape (1, n)
        np.testing.assert_allclose(p.reshape(m.shape), want, rtol=0, atol=1e-6)
    replay = Replay(mask.reshape(base.shape) for _, mask in bernoulli_record)
    check(kfuse_merge(name, models, base, mp, rng=replay, **extra), expected)
    assert not replay.masks


def test_della_kfuse_mask_frequencies_follow_probabilities():
    """Statistical check of kfuse's own draws: over 4000 seeds the keep frequency of every
    entry is within 5 standard errors of its DELLA probability."""
    delta = np.random.default_rng(1).normal(size=(2, 5))
    p = della_probabilities(delta, 0.5, 0.3)
    from kfuse.merge.methods.della import della_mask

    freq = np.mean([della_mask(delta, 0.5, 0.3, np.random.default_rng(s)) for s in range(4000)],
                   axis=0)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / 4000))
    assert p.min() == pytest.approx(0.2) and p.max() == pytest.approx(0.8)


@pytest.mark.parametrize("select_topk", [1.0, 0.5, 0.1])
def test_sce(tensors, select_topk):
    base, models = tensors
    check(kfuse_merge("sce", models, base, select_topk=select_topk),
          mergekit_merge("sce", models, base, select_topk=select_topk))


@pytest.mark.parametrize("with_base", [False, True])
@pytest.mark.parametrize("mode", [{}, {"nuslerp_flatten": False},
                                  {"nuslerp_flatten": False, "nuslerp_row_wise": True}])
def test_nuslerp(tensors, with_base, mode):
    base, models = tensors
    base = base if with_base else None
    mp = [{"weight": 0.3}, {"weight": 0.9}]
    check(kfuse_merge("nuslerp", models[:2], base, mp, **mode),
          mergekit_merge("nuslerp", models[:2], base, weight=[0.3, 0.9], **mode))
    colinear = [models[0], models[0] * 3.0]
    check(kfuse_merge("nuslerp", colinear, None, mp, **mode),
          mergekit_merge("nuslerp", colinear, None, weight=[0.3, 0.9], **mode))


@pytest.mark.parametrize("with_base", [False, True])
@pytest.mark.parametrize("normalize_weights", [True, False])
def test_multislerp(tensors, with_base, normalize_weights):
    base, models = tensors
    base = base if with_base else None
    w = [0.2, 0.5, 0.3] if normalize_weights else [0.4, 1.0, 0.6]
    mp = [{"weight": v} for v in w]
    check(kfuse_merge("multislerp", models, base, mp, normalize_weights=normalize_weights),
          mergekit_merge("multislerp", models, base, weight=w,
                         normalize_weights=normalize_weights))
    antipodal = [models[0], -models[0]]  # the mean direction is zero: two models lerp
    check(kfuse_merge("multislerp", antipodal, None, mp[:2]),
          mergekit_merge("multislerp", antipodal, None, weight=w[:2]))


def test_multislerp_three_antipodal_refused():
    a = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="weighted mean direction .* is zero"):
        kfuse_merge("multislerp", [a, -a, np.zeros(2)], None, [{"weight": 1.0}] * 3)


@pytest.mark.parametrize("extra", [{}, {"max_iter": 2, "tol": 1e-3}])
def test_karcher(tensors, extra):
    _, models = tensors
    check(kfuse_merge("karcher", models, **extra), mergekit_merge("karcher", models, **extra))
    check(kfuse_merge("karcher", [models[0], np.zeros_like(models[0])], **extra),
          mergekit_merge("karcher", [models[0], np.zeros_like(models[0])], **extra))


@pytest.mark.parametrize("t", [0.05, 0.3, 1.0])
def test_nearswap(tensors, t):
    base, models = tensors
    same = models[0].copy()
    same.flat[0] = base.flat[0]  # |base - other| = 0: the clamp at 1e-6
    check(kfuse_merge("nearswap", [same], base, t=t), mergekit_merge("nearswap", [same], base, t=t))


def test_arcee_fusion(tensors):
    base, models = tensors
    got = kfuse_merge("arcee_fusion", models[:1], base)
    check(got, mergekit_merge("arcee_fusion", models[:1], base))
    assert 0 < np.count_nonzero(got != base) < base.size or base.ndim == 1


@pytest.mark.parametrize("scale", [None, 0.5])
def test_passthrough(tensors, scale):
    _, models = tensors
    mp = [{"scale": scale}] if scale is not None else None
    check(kfuse_merge("passthrough", models[:1], None, mp),
          mergekit_merge("passthrough", models[:1], scale=scale))


def test_every_shared_method_is_tested():
    """A method both registries hold needs a test above (the test names name them)."""
    import sys

    shared = {m.spec.name for m in registry.registered_methods()} & set(METHODS)
    source = open(sys.modules[__name__].__file__).read()
    assert shared >= {"breadcrumbs", "della", "sce", "nuslerp", "multislerp", "karcher",
                      "nearswap", "arcee_fusion", "passthrough"}
    missing = [name for name in shared if f'"{name}"' not in source]
    assert not missing


def test_della_rows_of_one_entry():
    """A convention difference: rows of one entry (a Dense kernel with one unit) have no
    rank spread; mergekit's probabilities are 0/0 there and torch.bernoulli refuses them,
    kfuse keeps such entries with probability ``density``."""
    from mergekit.sparsify import della_magprune

    delta = np.random.default_rng(2).normal(size=(5, 1))
    np.testing.assert_allclose(della_probabilities(delta, 0.5, 0.1), np.full((5, 1), 0.5))
    with pytest.raises(RuntimeError):
        della_magprune(torch.from_numpy(delta), 0.5, 0.1)
