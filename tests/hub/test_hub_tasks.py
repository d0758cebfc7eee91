"""KerasHub Task models (a backbone plus a head, and a preprocessor) as branches; users'
subclassed models through the same copy; two hub copies beside a keras.applications one."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse.branches.state import clone_with_state
from tests.branches.test_branch_outputs_multi import TwoLayerNet
from tests.hub.families import backbone_families, bert_classifier, images, task_families


def _feed(branch, task, x):
    if not isinstance(x, dict):
        return {branch.input_names[0]: x}
    return {key: x[t.name] for key, t in zip(branch.input_names, task.inputs, strict=True)}


@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("name", sorted(task_families()))
def test_task_is_an_exact_branch(name, trainable, tmp_path):
    task, x = task_families()[name]()
    pool = {"pool": "last"} if name == "gpt2_causal_lm" else {}  # next-token logits
    branch = kfuse.Branch(task, name="task", trainable=trainable, **pool)
    model = kfuse.stack([branch], head=2)
    want = np.asarray(task(x, training=False))
    if pool:
        want = want[np.arange(len(want)), x["padding_mask"].sum(1) - 1]
    feed = _feed(branch, task, x)
    got = model.branch_outputs(feed)["task"]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    if trainable and name != "bert_text_classifier":
        return  # the round trip once per task kind is enough
    model.save(tmp_path / "fused.keras")
    again = keras.saving.load_model(tmp_path / "fused.keras")
    np.testing.assert_allclose(again.branch_outputs(feed)["task"], got, atol=1e-5, rtol=0)
    assert again.get_layer("task").trainable is trainable


def test_task_copy_keeps_its_class_preprocessor_and_vocabulary():
    task = bert_classifier()
    copy = clone_with_state(task)
    assert type(copy) is type(task) and copy is not task
    assert copy.preprocessor is not task.preprocessor
    assert (
        copy.preprocessor.tokenizer.get_vocabulary() == task.preprocessor.tokenizer.get_vocabulary()
    )
    strings = ["the quick fox", "a brown dog"]
    np.testing.assert_array_equal(
        copy.preprocessor(strings)["token_ids"], task.preprocessor(strings)["token_ids"]
    )
    tokens = task.preprocessor(strings)
    np.testing.assert_allclose(np.asarray(copy(tokens)), np.asarray(task(tokens)), atol=1e-6)


@keras.saving.register_keras_serializable(package="kfuse_tests")
class Net(TwoLayerNet):
    """A user's subclassed model whose get_config returns only its own arguments (no name)."""

    def get_config(self):
        return {"units": self.units}


def test_subclassed_model_with_get_config_is_an_exact_branch(tmp_path):
    net = Net(3)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    want = np.asarray(net(x))
    model = kfuse.stack(
        [kfuse.Branch(net, name="net", inputs={"x": (4,)}, trainable=False)], head=2
    )
    np.testing.assert_allclose(model.branch_outputs({"x": x})["net"], want, atol=1e-6)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.branch_outputs({"x": x})["net"], want, atol=1e-6)


def test_two_copies_of_one_backbone_beside_an_application(tmp_path):
    bb = backbone_families()["vit"]()[0]
    app = keras.applications.MobileNet(
        input_shape=(32, 32, 3), alpha=0.25, include_top=False, weights=None, pooling="avg"
    )
    branches = [
        kfuse.Branch(bb, name="vit_a", inputs="img", trainable=False, pool="first"),
        kfuse.Branch(bb, name="vit_b", inputs="img", pool="mean"),
        kfuse.Branch(app, name="app", inputs="big", trainable=False),
    ]
    model = kfuse.stack(branches, head=2)
    paths = [v.path for v in model.weights]
    assert len(paths) == len(set(paths))  # nothing clashes
    x = {
        "img": images(),
        "big": np.random.default_rng(1).uniform(size=(3, 32, 32, 3)).astype("float32"),
    }
    tokens = np.asarray(bb(x["img"]))
    got = model.branch_outputs(x)
    np.testing.assert_allclose(got["vit_a"], tokens[:, 0], atol=1e-5)
    np.testing.assert_allclose(got["vit_b"], tokens.mean(1), atol=1e-5)
    np.testing.assert_allclose(got["app"], np.asarray(app(x["big"])), atol=1e-5)
    trainable = {id(v) for v in model.trainable_weights}
    assert not any(id(v) in trainable for v in model.get_layer("vit_a").weights)
    assert all(id(v) in trainable for v in model.get_layer("vit_b").weights if v.trainable)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    for name, value in again.branch_outputs(x).items():
        np.testing.assert_allclose(value, got[name], atol=1e-5)
