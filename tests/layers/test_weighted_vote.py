"""One voting layer: `Vote` with fixed weights is AdaBoost SAMME's weighted hard vote,
and `WeightedVote` (its name in saved graphs) is that layer."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse.layers.vote import WeightedVote


def _scores(seed, rows=50, classes=4):
    return np.random.default_rng(seed).dirichlet(np.ones(classes), size=rows).astype("float32")


def test_weighted_hard_vote_equals_numpy_written_out():
    members, weights = [_scores(i) for i in range(3)], [0.5, 2.0, 1.0]
    expected = sum(w * np.eye(4)[m.argmax(1)] for w, m in zip(weights, members, strict=True)) / sum(
        weights
    )
    got = keras.ops.convert_to_numpy(kfuse.layers.Vote("hard", weights=weights)(members))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    same = keras.ops.convert_to_numpy(WeightedVote(weights)(members))
    np.testing.assert_array_equal(same, got)  # one layer, one arithmetic
    soft = keras.ops.convert_to_numpy(kfuse.layers.Vote("soft", weights=weights)(members))
    np.testing.assert_allclose(
        soft, sum(w * m for w, m in zip(weights, members, strict=True)) / 3.5, rtol=1e-6
    )


def test_fixed_weights_with_a_presence_mask_skip_the_absent_branch():
    a, b = _scores(0, rows=2), _scores(1, rows=2)
    presence = np.array([[1.0, 1.0], [0.0, 1.0]], "float32")
    out = keras.ops.convert_to_numpy(
        kfuse.layers.Vote("hard", weights=[3.0, 1.0])([a, b], presence=presence)
    )
    np.testing.assert_allclose(
        out[0], (3 * np.eye(4)[a[0].argmax()] + np.eye(4)[b[0].argmax()]) / 4, rtol=1e-6
    )
    np.testing.assert_allclose(out[1], np.eye(4)[b[1].argmax()], rtol=1e-6)  # only b is there


def test_weighted_vote_round_trips_and_reads_configs_saved_before(tmp_path):
    layer = WeightedVote([2.0, 1.0], branch_names=["a", "b"])
    assert layer.branch_weights() == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    again = WeightedVote.from_config(layer.get_config())
    assert again.weights_init == [2.0, 1.0] and again.mode == "hard"
    old = {
        "name": "weighted_vote",
        "trainable": True,
        "branch_names": None,
        "weights": [2.0, 1.0],
    }  # 0.2.0
    assert WeightedVote.from_config(old).weights_init == [2.0, 1.0]
    assert keras.saving.get_registered_name(WeightedVote) == "kfuse_ensemble>WeightedVote"
    assert keras.saving.get_registered_name(kfuse.layers.Vote) == "kfuse>Vote"

    inputs = keras.Input((4,), name="x")
    members = [keras.layers.Dense(3, activation="softmax", name=f"m{i}")(inputs) for i in range(2)]
    model = keras.Model(inputs, WeightedVote([2.0, 1.0])(members))
    model.save(tmp_path / "vote.keras")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    loaded = keras.models.load_model(tmp_path / "vote.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_weights_are_refused_naming_the_layer():
    with pytest.raises(
        ValueError, match=r"WeightedVote: `weights` must be non-negative.*\[-1.0, 2.0\]"
    ):
        WeightedVote([-1, 2])
    with pytest.raises(ValueError, match=r"Vote: `weights` must be non-negative.*\[0.0, 0.0\]"):
        kfuse.layers.Vote("hard", weights=[0, 0])
    with pytest.raises(ValueError, match="WeightedVote was given 2 weights for 3 branches"):
        WeightedVote([1, 2]).build([(None, 3)] * 3)
    with pytest.raises(ValueError, match="hard vote.*mode='soft'"):
        WeightedVote([1, 2], mode="soft")
