"""compare()'s self-check: a branch must compute what its base computes."""

import keras
import numpy as np

import kfuse


def _base():
    x = keras.Input((4,), name="x")
    return keras.Model(x, keras.layers.Dense(3, activation="softmax", name="out")(x))


def test_compare_flags_a_branch_that_no_longer_matches_its_base(rng):
    x = rng.normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    base = _base()
    fused = kfuse.stack([kfuse.Branch(base, name="net", trainable=False, output="probabilities")], head=3)
    report = kfuse.compare({"net": base, "fused": fused}, x, y)
    assert report.branch_drift["fused"]["net"] < 1e-5
    assert not [n for n in report.notes if n.startswith("self-check")]

    kernel = base.get_layer("out").kernel
    kernel.assign(kernel.numpy() + rng.normal(size=(4, 3)))  # the base moves on; the fused copy does not
    report = kfuse.compare({"net": base, "fused": fused}, x, y)
    gap = report.branch_drift["fused"]["net"]
    expected = np.max(np.abs(fused.branch_outputs(x)["net"] - base.predict(x, verbose=0)))
    assert gap > 1e-3 and np.isclose(gap, expected, rtol=1e-5)
    notes = [n for n in report.notes if n.startswith("self-check")]
    assert len(notes) == 1 and "branch 'net' of 'fused'" in notes[0]
