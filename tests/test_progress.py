"""Issue 37, item 6: long jobs show a progress bar, silent with verbose=0.

The Stacker (fits over folds x branches), an ensemble (members), `merge_to_file` and
`kfuse merge` (merged tensors) and kfuse's tuners (trials) all advance the one bar of
`kfuse.utils.progress`. Each job runs twice on tiny data, with verbose=1 and verbose=0, and
the captured stdout must carry the bar ("N/N" and its unit) or nothing at all.
"""

import os

import keras
import numpy as np
import pytest

import kfuse
from kfuse.cli import main
from kfuse.ensemble import BaggingClassifier
from kfuse.merge import merge_to_file
from kfuse.tuning import FusionHyperModel, make_tuner
from kfuse.utils.progress import progress_bar

X = np.random.default_rng(0).normal(size=(48, 4)).astype("float32")
Y = (X[:, 0] > 0).astype("int64")


def net(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((4,), name="x")
    return keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(4)(inp)))


def shown(out, done, unit):
    """The bar's last line: `done/done`, and the unit in its time per step ("ms/member")."""
    return f"{done}/{done}" in out and f"/{unit}" in out


def test_the_helper_is_a_keras_progbar_silent_at_zero(capfd):
    for verbose in (0, 1):
        bar = progress_bar(3, verbose, unit_name="member")
        assert isinstance(bar, keras.utils.Progbar) and bar.target == 3
        for _ in range(3):
            bar.add(1)
        out = capfd.readouterr().out
        assert shown(out, 3, "member") if verbose else out == ""
    assert progress_bar(0, 0).target == 1 and progress_bar(None, 0).target is None


@pytest.mark.parametrize("verbose", [1, 0])
def test_stacker(verbose, capfd):
    stacker = kfuse.Stacker(
        [kfuse.Branch(net(), name="a", fit={"epochs": 1})],
        head=2,
        cv=2,
        verbose=verbose,
        meta_fit={"epochs": 1},
    )
    stacker.fit({"x": X}, Y)
    out = capfd.readouterr().out
    assert shown(out, 3, "fit") if verbose else out == ""  # 2 folds + the refit


@pytest.mark.parametrize("verbose", [1, 0])
def test_ensemble(verbose, capfd):
    BaggingClassifier(
        net, n_estimators=2, fit_params={"epochs": 1}, random_state=0, verbose=verbose
    ).fit(X, Y)
    out = capfd.readouterr().out
    assert shown(out, 2, "member") if verbose else out == ""


@pytest.fixture
def saved(tmp_path):
    paths = [str(tmp_path / f"m{i}.keras") for i in range(2)]
    for i, path in enumerate(paths):
        net(i).save(path)
    return paths


@pytest.mark.parametrize("verbose", [1, 0])
def test_merge_to_file(saved, tmp_path, verbose, capfd):
    out_path = merge_to_file(saved, "linear", str(tmp_path / "merged.keras"), verbose=verbose)
    out = capfd.readouterr().out
    assert shown(out, 4, "tensor") if verbose else out == ""  # two kernels, two biases
    merged = keras.saving.load_model(out_path)
    a, b = (keras.saving.load_model(p) for p in saved)
    np.testing.assert_allclose(
        merged.get_weights()[0], (a.get_weights()[0] + b.get_weights()[0]) / 2, atol=1e-6
    )


@pytest.mark.parametrize("quiet", [False, True])
def test_kfuse_merge_command(saved, tmp_path, quiet, capfd):
    config = tmp_path / "merge.yaml"
    config.write_text(
        f"merge_method: linear\nmodels: [{saved[0]}, {saved[1]}]\noutput: out.keras\n"
    )
    assert main(["merge", str(config)] + (["--quiet"] if quiet else [])) == 0
    out = capfd.readouterr().out
    assert "kfuse merge: wrote" in out
    assert (
        (not shown(out, 4, "tensor") and out.count("\n") == 1) if quiet else shown(out, 4, "tensor")
    )
    assert os.path.exists(tmp_path / "out.keras")


@pytest.mark.parametrize("verbose", [1, 0])
def test_tuner(verbose, tmp_path, capfd):
    branches = [kfuse.Branch(net(i), name=n, output="probabilities") for i, n in enumerate("ab")]
    hypermodel = FusionHyperModel(branches, head=2, fusions=["average"])
    tuner = make_tuner(
        hypermodel,
        "random",
        max_trials=2,
        verbose=verbose,
        directory=str(tmp_path),
        project_name="p",
    )
    tuner.search({"x": X}, Y, epochs=1, validation_split=0.25, verbose=0)
    out = capfd.readouterr().out
    assert shown(out, 2, "trial") if verbose else out == ""
