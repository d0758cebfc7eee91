"""LoRA fine-tuning of a KerasHub backbone inside a fused model (`Branch(lora_rank=)`):
only the adapters (and the top) train, the user's model is untouched, a `.keras` round
trip is exact and keeps training, and the SavedModel with the adapters folded into the
kernels serves the same outputs with no LoRA variables."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kfuse
from tests.hub.families import backbone_families, bert_classifier

RANK = 2
LABELS = np.array([0, 1, 0])


def _bert():
    return backbone_families()["bert"]()


def _size(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_only_the_adapters_and_the_top_train_and_the_user_model_is_untouched():
    bert, x = _bert()
    user_weights = [w.copy() for w in bert.get_weights()]
    lora = kfuse.stack(
        [kfuse.Branch(bert, name="bert", select="pooled_output", lora_rank=RANK)], head=2
    )
    full = kfuse.stack([kfuse.Branch(bert, name="bert", select="pooled_output")], head=2)
    names = {w.path.split("/")[-1] for w in lora.get_layer("bert").trainable_weights}
    assert names == {"lora_kernel_a", "lora_kernel_b", "bias"}  # query / value biases, as KerasHub
    # independent count: each query / value projection's kernel K gets A of shape
    # K[:-1] + (r,) and B of shape (r, K[-1]); its bias stays trainable
    by_path = {w.path: w for w in bert.weights}
    kernels = [w for p, w in by_path.items() if p.endswith(("query/kernel", "value/kernel"))]
    assert len(kernels) == 2  # one transformer layer
    expected_branch = sum(
        int(np.prod(k.shape[:-1])) * RANK
        + RANK * k.shape[-1]
        + int(np.prod(by_path[k.path[: -len("kernel")] + "bias"].shape))
        for k in kernels
    )
    top = _size(lora.top.trainable_weights)
    assert _size(lora.trainable_weights) == expected_branch + top
    assert _size(full.trainable_weights) == _size(bert.trainable_weights) + top
    assert _size(lora.trainable_weights) < _size(full.trainable_weights) / 10
    branch = lora.get_layer("bert")
    frozen = {
        w.path: w.numpy().copy()
        for w in branch.weights
        if w.path.endswith("kernel") and "lora" not in w.path
    }
    before = lora.predict(x, verbose=0)
    lora.fit(x, LABELS, epochs=2, batch_size=3, verbose=0)
    assert not np.allclose(lora.predict(x, verbose=0), before)
    for w in branch.weights:
        if w.path in frozen:
            np.testing.assert_array_equal(w.numpy(), frozen[w.path])
    assert any(np.any(w.numpy()) for w in branch.weights if w.path.endswith("lora_kernel_b"))
    for a, b in zip(user_weights, bert.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any("lora" in w.path for w in bert.weights)


@pytest.mark.slow
def test_keras_round_trip_and_the_merged_saved_model(tmp_path):
    task = bert_classifier()
    x = {
        k: np.asarray(v)
        for k, v in task.preprocessor(["the quick fox", "a dog", "the dog"]).items()
    }
    model = kfuse.stack([kfuse.Branch(task, name="bert", lora_rank=RANK)], head=2)
    # a Task's own head is frozen too: only the backbone's adapters train in the branch
    assert all(w.path.split("/")[-1] in ("lora_kernel_a", "lora_kernel_b", "bias")
               and "self_attention" in w.path for w in model.get_layer("bert").trainable_weights)  # fmt: skip
    model.fit(x, LABELS, epochs=2, batch_size=3, verbose=0)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "lora.keras")
    again = keras.saving.load_model(tmp_path / "lora.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), want, atol=1e-5, rtol=0)
    assert _size(again.trainable_weights) == _size(model.trainable_weights)
    again.fit(x, LABELS, epochs=1, batch_size=3, verbose=0)  # zero adapters restarted: they move
    assert any(np.any(w.numpy()) for w in again.weights if w.path.endswith("lora_kernel_b"))

    path = kfuse.export.export_saved_model(
        model, tmp_path / "served", merge_lora=True, raw_text=False
    )
    loaded = tf.saved_model.load(path)
    assert not [v.name for v in loaded.variables if "lora" in v.name]
    served = loaded.signatures["serving_default"](
        **{k: tf.constant(v.astype("int32")) for k, v in x.items()}
    )
    np.testing.assert_allclose(served["logits"].numpy(), want, atol=1e-5, rtol=0)
    assert any("lora" in w.path for w in model.weights)  # the model itself keeps its adapters


def test_lora_needs_a_hub_backbone_a_trainable_branch_and_a_positive_rank():
    net = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)], name="net")
    with pytest.raises(
        ValueError, match=r"Branch 'mlp': lora_rank=2 needs a KerasHub Backbone.*Sequential"
    ):
        kfuse.Branch(net, name="mlp", lora_rank=2)
    bert, _ = _bert()
    with pytest.raises(ValueError, match=r"Branch 'bert': lora_rank=2 .* trainable=False"):
        kfuse.Branch(bert, name="bert", trainable=False, lora_rank=2)
    with pytest.raises(
        ValueError, match=r"Branch 'bert': `lora_rank` must be a positive int; received 0"
    ):
        kfuse.Branch(bert, name="bert", lora_rank=0)
