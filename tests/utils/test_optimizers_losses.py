"""One way to copy an optimizer and one default loss, for the Stacker's bases and the
ensembles' members alike."""

import keras
import numpy as np
import pytest

from kfuse.branches.outputs import default_loss
from kfuse.utils.optimizers import copy_optimizer, new_optimizer


def test_copy_optimizer_has_the_settings_and_none_of_the_state():
    adam = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-6, beta_1=0.8)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=adam, loss="mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0)  # adam now holds state
    copy = copy_optimizer(adam, learning_rate=0.5)
    config, original = copy.get_config(), adam.get_config()
    assert copy is not adam and type(copy) is keras.optimizers.Adam
    assert config["learning_rate"] == 0.5 and original["learning_rate"] == pytest.approx(0.01)
    assert {k: v for k, v in config.items() if k not in ("learning_rate", "name")} == {
        k: v for k, v in original.items() if k not in ("learning_rate", "name")
    }
    assert not copy.built and adam.built  # no slot variables carried over


def test_new_optimizer_from_a_name_a_config_or_an_instance():
    sgd = keras.optimizers.SGD(momentum=0.9)
    for spec in ("sgd", {"class_name": "SGD", "config": {"momentum": 0.9}}, sgd):
        made = new_optimizer(spec, learning_rate=0.25)
        assert isinstance(made, keras.optimizers.SGD) and made is not sgd
        assert made.get_config()["learning_rate"] == 0.25
    assert new_optimizer(sgd).get_config()["momentum"] == 0.9


def _ending(activation, units=3):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])


@pytest.mark.parametrize(
    ("activation", "head", "one_hot", "expected", "from_logits"),
    [
        (None, "softmax", False, keras.losses.SparseCategoricalCrossentropy, True),
        ("softmax", "softmax", False, keras.losses.SparseCategoricalCrossentropy, False),
        (None, "softmax", True, keras.losses.CategoricalCrossentropy, True),
        ("sigmoid", "sigmoid", False, keras.losses.BinaryCrossentropy, False),
        (None, "sigmoid", False, keras.losses.BinaryCrossentropy, True),
        ("softmax", None, False, keras.losses.MeanSquaredError, None),
    ],
)
def test_default_loss_reads_the_final_activation(activation, head, one_hot, expected, from_logits):
    loss = default_loss(_ending(activation), head, one_hot)
    assert type(loss) is expected
    if from_logits is not None:
        assert loss.get_config()["from_logits"] is from_logits


def test_default_loss_refuses_an_unreadable_ending_only_when_asked():
    with pytest.raises(ValueError, match="Branch 'b': the base ends in activation 'relu'"):
        default_loss(_ending("relu"), "softmax", who="Branch 'b'")
    assert default_loss(_ending("relu"), "softmax").get_config()["from_logits"] is False  # members
