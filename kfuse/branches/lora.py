"""LoRA fine-tuning of a KerasHub backbone inside a branch, and folding it for serving.

`Branch(hub_model, name=..., lora_rank=r)` calls KerasHub's `Backbone.enable_lora(r)` on
the branch's COPY of the backbone (a Task's `backbone`; the user's model is never
touched): every backbone weight is frozen and low-rank factors `lora_kernel_a` /
`lora_kernel_b` are added to its query and value projections, so only they (and the
layers above the branches) train. A Task's own head layers inside the branch are frozen
too.

A `.keras` file stores each LoRA layer's update folded into its base kernel (Keras's own
saving of a LoRA layer); reloaded, the branch gets adapters of the same rank again
(`FusedModel.from_config`), so predictions are equal and the same weights train. Keras
loads such adapters as zeros (both factors), from which they could not move: the next
`fit` restarts every all-zero adapter as LoRA starts (`lora_kernel_a` random,
`lora_kernel_b` zero), which leaves the outputs unchanged.

`merged_copy` (`export_saved_model(..., merge_lora=True)`) gives a copy of the fused model
without LoRA variables, each update folded into its kernel.
"""

import os
import tempfile
import warnings

import keras
import numpy as np

from kfuse.branches.class_copy import copy_assets, rebuilt_by_class


def lora_target(model):
    """The KerasHub backbone of `model` that has `enable_lora` (itself, or a Task's
    `backbone`), or None."""
    if callable(getattr(model, "enable_lora", None)):
        return model
    backbone = getattr(model, "backbone", None)
    if callable(getattr(backbone, "enable_lora", None)):
        return backbone
    return None


def check_lora(rank, base, branch_name, trainable):
    """Refuse `lora_rank=rank` for a branch at construction: a bad rank, a frozen branch,
    or a base with no KerasHub backbone to put adapters on."""
    if rank is None:
        return None
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(
            f"Branch '{branch_name}': `lora_rank` must be a positive int; received {rank!r}"
        )
    if not trainable:
        raise ValueError(
            f"Branch '{branch_name}': lora_rank={rank} fine-tunes the branch's LoRA adapters, "
            "but trainable=False freezes it. Drop trainable=False (LoRA freezes the backbone "
            "weights itself), or drop lora_rank."
        )
    if not isinstance(base, keras.Model) or lora_target(base) is None:
        kind = type(base).__name__ if isinstance(base, keras.Model) else "a callable"
        raise ValueError(
            f"Branch '{branch_name}': lora_rank={rank} needs a KerasHub Backbone (or a Task "
            f"whose backbone has `enable_lora`); the base is {kind}, which has no "
            "`enable_lora(rank)`. Fine-tune it fully (trainable=True, no lora_rank) or "
            "freeze it (trainable=False)."
        )
    return int(rank)


def _hub_layer(model):
    for layer in model.layers:
        if rebuilt_by_class(layer) and lora_target(layer) is not None:
            return layer
        if isinstance(layer, keras.Model):
            found = _hub_layer(layer)
            if found is not None:
                return found
    return None


def apply_lora(sub_model, rank, branch_name):
    """Enable LoRA of rank `rank` on the hub model inside the branch sub-model `sub_model`
    (in place): its backbone through `enable_lora`, a Task's other layers frozen.

    Example (a tiny BERT, no download):

    ```python
    import keras, keras_hub
    from kfuse.branches.class_copy import nested
    from kfuse.branches.lora import apply_lora

    bert = keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=1, num_heads=2,
                                         hidden_dim=8, intermediate_dim=16, max_sequence_length=4)
    sub = nested(bert)
    apply_lora(sub, 2, "bert")
    assert {w.path.split("/")[-1] for w in sub.trainable_weights} == {"lora_kernel_a", "lora_kernel_b"}
    ```
    """
    hub = _hub_layer(sub_model)
    if hub is None:
        raise ValueError(
            f"Branch '{branch_name}': lora_rank={rank} found no KerasHub backbone with "
            "`enable_lora` in the branch"
        )
    backbone = lora_target(hub)
    if hub is not backbone:
        for layer in hub.layers:
            if layer is not backbone:
                layer.trainable = False
    backbone.enable_lora(int(rank))
    return backbone


def restart_zero_adapters(model):
    """Give every LoRA adapter of `model` whose factors are both all zero (as Keras loads
    them) a fresh `lora_kernel_a` (he_uniform, as `enable_lora` draws it); the outputs do
    not change (`lora_kernel_b` stays zero). Returns how many were restarted."""
    by_path = {w.path: w for w in model.weights}
    restarted = 0
    for path, a in by_path.items():
        if not path.endswith("lora_kernel_a"):
            continue
        b = by_path.get(path[: -len("lora_kernel_a")] + "lora_kernel_b")
        if (
            b is None
            or np.any(keras.ops.convert_to_numpy(a))
            or np.any(keras.ops.convert_to_numpy(b))
        ):
            continue
        a.assign(keras.initializers.HeUniform()(a.shape, dtype=a.dtype))
        restarted += 1
    return restarted


def has_lora(model):
    """Whether a `kfuse.FusedModel` has a branch fine-tuned through LoRA."""
    return any(b.get("lora_rank") for b in getattr(model, "kfuse_info", {}).get("branches", []))


def merged_copy(model):
    """A copy of the fused `model` with every LoRA update folded into its base kernel and
    no LoRA variables: what serves it. The user's model is not changed.

    Its weights go through a `.weights.h5` file, where Keras writes each LoRA layer's
    kernel with the update folded in; tokenizer vocabularies (assets) are copied.
    """
    config = model.get_config()
    info = dict(config["kfuse_info"])
    info["branches"] = [{**b, "lora_rank": None} for b in info.get("branches", [])]
    config["kfuse_info"] = info
    with warnings.catch_warnings():  # a KerasHub Task compiles itself; nothing to restore here
        warnings.filterwarnings("ignore", message=r"`compile\(\)` was not called")
        merged = type(model).from_config(config)
    with tempfile.TemporaryDirectory(prefix="kfuse_lora_") as folder:
        path = os.path.join(folder, "merged.weights.h5")
        keras.Model.save_weights(model, path)
        keras.Model.load_weights(merged, path)
    copy_assets(model, merged)
    return merged
