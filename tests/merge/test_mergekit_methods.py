"""mergekit's newer methods through ``merge``, ``merge_to_file`` and the YAML CLI: streamed
file-to-file merges equal the in-memory merge, and bad calls get clear errors."""

import keras
import numpy as np
import pytest

from kfuse.merge import merge, merge_to_file
from kfuse.merge.config import main

NEW = {
    "breadcrumbs": {"density": 0.6, "gamma": 0.05},
    "breadcrumbs_ties": {"density": 0.6, "gamma": 0.05},
    "della": {"density": 0.5, "epsilon": 0.1, "seed": 2},
    "della_linear": {"density": 0.5, "epsilon": 0.1, "seed": 2},
    "sce": {"select_topk": 0.5},
    "nuslerp": {},
    "multislerp": {},
    "karcher": {},
    "nearswap": {"t": 0.05},
    "arcee_fusion": {},
    "passthrough": {"scale": 0.5},
}
BASED = ("breadcrumbs", "breadcrumbs_ties", "della", "della_linear", "sce", "nearswap",
         "arcee_fusion", "multislerp", "nuslerp")
COUNT = {"nuslerp": 2, "nearswap": 1, "arcee_fusion": 1, "passthrough": 1}


def net():
    inp = keras.Input((5,))
    x = keras.layers.Dense(8, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(3)(x))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mk")
    keras.utils.set_random_seed(0)
    base = net()
    paths = [str(folder / "base.keras")]
    base.save(paths[0])
    rng = np.random.default_rng(0)
    for i in range(3):
        m = net()
        m.set_weights([w + rng.normal(scale=0.1, size=w.shape).astype("float32")
                       for w in base.get_weights()])
        paths.append(str(folder / f"m{i}.keras"))
        m.save(paths[-1])
    return folder, paths[0], paths[1:]


def _args(name, files):
    _, base, models = files
    return models[:COUNT.get(name, 3)], base if name in BASED else None


@pytest.mark.parametrize("name", sorted(NEW))
def test_streamed_equals_in_memory(files, name, tmp_path):
    models, base = _args(name, files)
    out = merge_to_file(models, name, str(tmp_path / "out.keras"), base=base, **NEW[name])
    got = keras.saving.load_model(out, safe_mode=True)
    expected = merge(models, name, base=base, **NEW[name])
    for a, b in zip(got.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    first = keras.saving.load_model(models[0], safe_mode=True)
    assert any(not np.array_equal(a, b)
               for a, b in zip(got.get_weights(), first.get_weights(), strict=True))


def test_yaml_cli_new_method(files, capsys):
    folder, base, models = files
    path = folder / "della.yaml"
    path.write_text(
        "merge_method: della_linear\nbase_model: base.keras\n"
        "models:\n  - model: m0.keras\n    parameters: {weight: 1.0, density: 0.5}\n"
        "  - model: m1.keras\n    parameters: {weight: 0.5, density: 0.7, epsilon: 0.2}\n"
        "parameters: {seed: 4}\noutput: della.keras\n")
    assert main([str(path)]) == 0
    got = keras.saving.load_model(str(folder / "della.keras"), safe_mode=True)
    expected = merge(models[:2], "della_linear", base=base, seed=4, model_parameters=[
        {"weight": 1.0, "density": 0.5}, {"weight": 0.5, "density": 0.7, "epsilon": 0.2}])
    for a, b in zip(got.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    path.write_text("merge_method: nearswp\nmodels: [m0.keras]\n")
    assert main([str(path)]) == 2
    assert "did you mean 'nearswap'" in capsys.readouterr().err


@pytest.mark.parametrize("call,error,message", [
    (lambda m, b: merge(m[:1], "nearswap", base=b), ValueError, "nearswap needs parameter t"),
    (lambda m, b: merge(m[:2], "arcee_fusion", base=b), ValueError,
     "arcee_fusion takes at most 1 model.* plus base, got 2"),
    (lambda m, b: merge(m, "nuslerp"), ValueError, "nuslerp takes at most 2 model.*got 3"),
    (lambda m, b: merge(m[:1], "nuslerp"), ValueError, "nuslerp needs at least 2"),
    (lambda m, b: merge(m, "sce"), ValueError, "sce needs base="),
    (lambda m, b: merge(m, "breadcrumbs", base=b, gamma=1.5), ValueError,
     r"'gamma' must be in \[0, 1\), got 1.5"),
    (lambda m, b: merge(m, "della", base=b, density=0.9, epsilon=0.2), ValueError,
     r"della: density \+- epsilon must lie in \(0, 1\), got density=0.9, epsilon=0.2"),
    (lambda m, b: merge(m, "karcher", max_iter=2.5), TypeError,
     "'max_iter' must be an integer, got 2.5"),
    (lambda m, b: merge(m, "multislerp", normalize_weights="yes"), TypeError,
     "'normalize_weights' must be true or false"),
    (lambda m, b: merge(m, "della", base=b, epsilom=0.1), ValueError, "Did you mean 'epsilon'"),
    (lambda m, b: merge(m, "karcher", base=b), ValueError, "karcher takes no base="),
    (lambda m, b: merge(m, "linear", base=b), ValueError, "linear takes no base="),
])
def test_bad_calls(files, call, error, message):
    _, base, models = files
    with pytest.raises(error, match=message):
        call(models, base)


@pytest.mark.parametrize("name,limit", [("linear", 3), ("task_arithmetic", 16), ("ties", 16),
                                        ("dare_ties", 16), ("breadcrumbs_ties", 16),
                                        ("della", 20)])
def test_arithmetic_memory_per_tensor(name, limit):
    """A streamed merge holds the inputs' tensors plus what the method allocates: at most
    ``limit`` tensors for 8 models (numpy's allocations as tracemalloc counts them; stacking
    the task vectors, their weighted copy and the sign masks took 24-30)."""
    import tracemalloc

    from kfuse.merge.api import apply_method
    from kfuse.merge.methods import get_method

    rng = np.random.default_rng(0)
    base = rng.normal(size=(250, 400)).astype("float32")
    models = [base + rng.normal(size=base.shape).astype("float32") for _ in range(8)]
    tracemalloc.start()
    try:
        apply_method(get_method(name), models, None if name == "linear" else base,
                     [{}] * 8, {} if name in ("linear", "task_arithmetic") else {"density": 0.5},
                     rng=np.random.default_rng(0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= limit * base.nbytes
