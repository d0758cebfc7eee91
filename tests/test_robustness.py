import keras
import numpy as np
import pytest

import kfuse
from kfuse.evaluation.robustness import RobustnessResult, robustness_sweep

CENTRES = {"a": np.random.default_rng(99).normal(size=(4, 10)) * 1.2,
           "b": np.random.default_rng(98).normal(size=(4, 6))}


def two_modalities(n, seed):
    """Four classes; each modality alone carries part of the signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = {k: (c[y] + rng.normal(size=(n, c.shape[1]))).astype("float32") for k, c in CENTRES.items()}
    return x, y


def fused_model(rate, x, y, epochs):
    keras.utils.set_random_seed(0)
    branches = [
        kfuse.Branch(lambda t: keras.layers.Dense(16, activation="relu")(t), name="ba", inputs={"a": (10,)}),
        kfuse.Branch(lambda t: keras.layers.Dense(16, activation="relu")(t), name="bb", inputs={"b": (6,)}),
    ]
    fusion = kfuse.layers.GatedFusion(units=16)
    if rate:
        fusion = kfuse.layers.ModalityDropout(rate, fusion, seed=0)
    model = kfuse.stack(branches, fusion=fusion, head=4, presence_input=True)
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained():
    x, y = two_modalities(800, 0)
    test = two_modalities(400, 1)
    return {
        "plain": fused_model(0.0, x, y, epochs=12),
        "moddrop": fused_model(0.5, x, y, epochs=12),
        "test": test,
    }


def _tiny_model():
    a, b = keras.Input((10,), name="a"), keras.Input((6,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(4)(joined))


def test_sweep_structure_and_consistency():
    x, y = two_modalities(200, 2)
    model = _tiny_model()
    result = robustness_sweep(model, x, y, noise_levels=(0, 0.5, 1.0))
    assert isinstance(result, RobustnessResult)
    assert list(result.noise.columns) == ["modality", "level", "score"]
    assert len(result.noise) == 2 * 3
    assert list(result.missing["missing"]) == ["", "a", "b"]
    assert (result.noise[result.noise.level == 0]["score"] == result.clean).all()
    scores = np.argmax(model.predict(x, verbose=0), axis=1)
    assert result.clean == pytest.approx(np.mean(scores == y))
    for m in "ab":
        rows = result.noise[result.noise.modality == m]
        s = rows["score"].to_numpy()
        assert result.relative[m] == pytest.approx((s[0] + 2 * s[1] + s[2]) / 4)
    assert result.effective is None


def test_effective_robustness_against_itself_is_zero():
    x, y = two_modalities(200, 3)
    model = _tiny_model()
    result = robustness_sweep(model, x, y, noise_levels=(0, 1.0), baseline=model, missing=False)
    assert result.effective == {"a": pytest.approx(0.0), "b": pytest.approx(0.0)}
    assert list(result.missing["missing"]) == [""]


def test_missing_subsets_of_three_modalities_and_errors():
    rng = np.random.default_rng(0)
    inputs = {k: keras.Input((3,), name=k) for k in "abc"}
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Concatenate()(list(inputs.values()))))
    x = {k: rng.normal(size=(50, 3)).astype("float32") for k in "abc"}
    y = rng.integers(0, 2, 50)
    result = robustness_sweep(model, x, y, noise_levels=(0, 1))
    assert list(result.missing["missing"]) == ["", "a", "b", "c", "a+b", "a+c", "b+c"]
    with pytest.raises(ValueError, match="not in x"):
        robustness_sweep(model, x, y, modalities=["d"])
    with pytest.raises(TypeError, match="dict"):
        robustness_sweep(model, x["a"], y)


@pytest.mark.slow
def test_modality_dropout_keeps_accuracy_when_a_modality_is_missing(trained):
    xt, yt = trained["test"]
    plain = robustness_sweep(trained["plain"], xt, yt, noise_levels=(0, 1.0, 2.0))
    moddrop = robustness_sweep(trained["moddrop"], xt, yt, noise_levels=(0, 1.0, 2.0))
    assert plain.clean > 0.85 and moddrop.clean > 0.85
    loss_plain = plain.clean - plain.summary().set_index("modality")["score_without_it"]
    loss_moddrop = moddrop.clean - moddrop.summary().set_index("modality")["score_without_it"]
    # measured (seed 0): without ModDrop losing 'a' costs ~0.6 accuracy, with it ~0.2
    assert loss_moddrop["a"] < loss_plain["a"] - 0.25
    assert loss_moddrop["b"] <= loss_plain["b"]
    fig = moddrop.plot(title="ModDrop")
    assert len(fig.axes) == 2


@pytest.mark.slow
def test_presence_input_marks_the_branch_of_a_missing_input(trained):
    xt, yt = trained["test"]
    model = trained["moddrop"]
    zeroed = {**xt, "b": np.zeros_like(xt["b"])}
    masked = model.predict({**zeroed, "presence": np.tile([[1.0, 0.0]], (len(yt), 1))}, verbose=0)
    other = {**xt, "b": np.ones_like(xt["b"]) * 9, "presence": np.tile([[1.0, 0.0]], (len(yt), 1))}
    np.testing.assert_allclose(masked, model.predict(other, verbose=0), atol=1e-5)
    result = robustness_sweep(model, xt, yt, noise_levels=(0,))
    missing_b = result.missing.set_index("missing").loc["b", "score"]
    assert missing_b == pytest.approx(np.mean(np.argmax(masked, axis=1) == yt))
