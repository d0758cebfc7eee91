"""Bad input: each case raises a clear error, before any base trains."""

import keras
import numpy as np
import pytest

import kfuse
from tests.stacking import blobs, small_model, trained_model


def fresh(name="f", inputs="signal", **fit):
    return kfuse.Branch(
        lambda t: keras.layers.Dense(4, activation="relu")(t), name=name, inputs=inputs, fit=fit
    )


def test_cv_larger_than_the_smallest_class_count():
    x, y = blobs(30)
    y[:] = 0
    y[:2] = 1
    stacker = kfuse.Stacker([fresh()], head=3, cv=3, verbose=0)
    with pytest.raises(ValueError, match=r"cv=3 folds, but class 1 has only 2 row"):
        stacker.fit(x, y)


def test_labels_that_do_not_fit_the_head():
    x, y = blobs(30)
    stacker = kfuse.Stacker([fresh()], head=3, cv=2, verbose=0)
    with pytest.raises(ValueError, match=r"labels do not fit the head.*\[0, 3\).*from 3 to 5"):
        stacker.fit(x, y + 3)
    with pytest.raises(ValueError, match="look one-hot"):
        stacker.fit(x, np.eye(3)[y])


def test_fit_settings_that_model_fit_does_not_take():
    with pytest.raises(
        ValueError, match=r"Branch 'f': fit setting 'epoch' .*Did you mean \['epochs'\]"
    ):
        kfuse.Stacker([fresh(epoch=3)], head=3)
    with pytest.raises(
        ValueError, match=r"Branch 'f': fit setting 'validation_data' depends on the rows"
    ):
        kfuse.Stacker([fresh(validation_data=None)], head=3)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        kfuse.Stacker([fresh(epochs=0)], head=3)


def test_x_and_y_of_different_lengths():
    x, y = blobs(30)
    stacker = kfuse.Stacker([fresh()], head=3, cv=2, verbose=0)
    with pytest.raises(ValueError, match="x has 30 rows .* but y has 29"):
        stacker.fit(x, y[:-1])
    two = kfuse.Stacker([fresh("a", "u"), fresh("b", "v")], head=3, cv=2, verbose=0)
    with pytest.raises(ValueError, match="different numbers of rows"):
        two.fit({"u": x, "v": x[:-1]}, y)
    with pytest.raises(ValueError, match=r"lacks \['v'\]"):
        two.fit({"u": x}, y)
    with pytest.raises(ValueError, match="pass x as a dict"):
        two.fit(x, y)


def test_prefit_branch_that_is_not_built():
    x, y = blobs(30)
    stacker = kfuse.Stacker([fresh()], head=3, cv="prefit", verbose=0)
    with (
        pytest.warns(UserWarning, match="leak"),
        pytest.raises(ValueError, match="branch 'f' is a callable, not a built"),
    ):
        stacker.fit(x, y)
    with pytest.raises(ValueError, match="no defined inputs"):
        kfuse.Branch(keras.Sequential([keras.layers.Dense(3)]), name="s")


def test_work_dir_of_a_different_configuration(tmp_path):
    x, y = blobs(30)
    frozen = kfuse.Branch(
        trained_model("m", x, y, epochs=1), name="m", inputs="signal", trainable=False
    )
    settings = {"head": 3, "cv": 2, "verbose": 0, "work_dir": tmp_path, "meta_fit": {"epochs": 1}}
    kfuse.Stacker([frozen], seed=0, **settings).fit(x, y)
    assert (tmp_path / "run.json").exists()
    kfuse.Stacker([frozen], seed=0, **settings).fit(x, y)  # same configuration: fine
    with pytest.raises(
        ValueError, match=r"different configuration \(differs in: seed, splits\).*delete"
    ):
        kfuse.Stacker([frozen], seed=1, **settings).fit(x, y)
    with pytest.raises(ValueError, match=r"differs in: data"):
        kfuse.Stacker([frozen], seed=0, **settings).fit(x + 1, y)


def test_input_shape_that_does_not_match_the_base():
    x, y = blobs(30, width=5)
    branch = kfuse.Branch(small_model("m", width=8), name="m", inputs="signal")
    with pytest.raises(
        ValueError, match=r"Branch 'm': input 'signal' expects shape \(8,\).* has \(5,\)"
    ):
        kfuse.Stacker([branch], head=3, cv=2, verbose=0).fit(x, y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"head": None}, "needs head="),
        ({"head": 3, "levels": 3}, "levels must be 1 or 2"),
        ({"head": 3, "stack_method": "proba"}, "stack_method must be one of"),
        ({"head": kfuse.layers.heads.Regression(), "stack_method": "logits"}, "regression head"),
        ({"head": 3, "stack_method": "features"}, "needs a layer to tap"),
        ({"head": 3, "meta_fit": {"epoch": 2}}, "meta_fit key 'epoch'"),
    ],
)
def test_bad_arguments(kwargs, match):
    branch = kfuse.Branch(small_model("m"), name="m", inputs="signal")
    with pytest.raises(ValueError, match=match):
        kfuse.Stacker([branch], **kwargs)


def test_refit_false_with_features_is_refused():
    branch = kfuse.Branch(small_model("m"), name="m", inputs="signal", tap="hidden")
    with pytest.raises(ValueError, match="do not share one space"):
        kfuse.Stacker([branch], head=3, cv=2, refit=False)


def test_predict_before_fit():
    stacker = kfuse.Stacker([kfuse.Branch(small_model("m"), name="m", inputs="signal")], head=3)
    with pytest.raises(ValueError, match="not fitted"):
        stacker.predict(np.zeros((2, 8), "float32"))
