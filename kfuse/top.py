"""`model.top`: the layers above the branches (fusion, passthrough, meta-learner, head).

`kfuse.stack` builds them as ONE functional `keras.Model` named "top", whose inputs are
named: one per branch (the branch's output, keyed by branch name), then the raw
model inputs the top reads itself (every input with `passthrough=True`; the "presence"
mask with `presence_input=True`); it takes them as a dict keyed by those names (or a list
in that order). The fused model calls `top` on its branch outputs, so
training `model.top` on cached branch outputs trains the fused model's own layers: this
is how `fit_head`, the `Stacker`, cached tuner trials and `compare`'s ablation work.

Warm start (`warm_start="auto"`, the default of `kfuse.stack`): when every branch hands
over class scores of the head's width (`Branch(output="probabilities")` or
`output="logits"`, all of one kind), the fusion is "concat" (no projection or
normalisation), "average" or "weighted_average", there is no meta-learner and the head is
`Classification`, `Binary` or `MultiLabel`, the head starts as an identity over the
fused class scores: before any training the stack predicts exactly the class the plain
(for weighted_average: the initially uniform, or the given fixed) average of its
branches predicts. Logit branches: the head's logits are the average logits, so its
probabilities equal the average's softmax / sigmoid. Probability branches: the logits
are `WARM_SCALE` times the average probabilities (a sigmoid head subtracts one half
first), so the predicted class is the average's. Passthrough inputs start at weight 0.
"""

import keras
import numpy as np

from kfuse.heads import Classification, MultiLabel
from kfuse.layers import Average, Concat, FusionLayer, WeightedAverage
from kfuse.meta import apply_meta

TOP_NAME = "top"
#: logits = WARM_SCALE * average probability for a warm-started head over probabilities
WARM_SCALE = 10.0
WARM_OPTIONS = ("auto", True, False)


def _flatten(x, name):
    return keras.layers.Flatten(name=name)(x) if len(x.shape) > 2 else x


def build_top(branch_specs, raw_specs, fusion_layer, meta, head, passthrough, meta_dropout=0.0, presence=False):
    """The top model; `branch_specs` / `raw_specs`: name -> (shape without batch, dtype)."""
    inputs = {name: keras.Input(shape=s, dtype=d, name=name) for name, (s, d) in branch_specs.items()}
    raw = {name: keras.Input(shape=s, dtype=d, name=name) for name, (s, d) in raw_specs.items()}
    outputs = [inputs[n] for n in branch_specs]
    mask = raw.get("presence") if presence else None
    fused = fuse(fusion_layer, list(branch_specs), outputs, mask)
    if passthrough:
        flat = [_flatten(raw[k], f"passthrough_flatten_{k}") for k in raw]
        fused = keras.layers.Concatenate(name="passthrough")([_flatten(fused, "meta_input"), *flat])
    x = apply_meta(meta, fused, dropout=meta_dropout)
    if head is not None and len(x.shape) > 2:
        raise ValueError(
            f"The head {head} receives a tensor of shape {tuple(x.shape)} (batch, ...): a "
            "sequence or feature map (a tapped layer, or a fusion that keeps the time axis). "
            "The head takes (batch, features): pool or flatten it first, e.g. tap a pooling "
            "layer, or pass meta=keras.layers.GlobalAveragePooling1D() (or Flatten())"
        )
    out = head(x) if head is not None else x
    # a list (branch order, then raw inputs) keeps the branches' order in the fused graph;
    # the top still takes a dict keyed by these input names
    return keras.Model([*inputs.values(), *raw.values()], out, name=TOP_NAME)


def fuse(fusion_layer, names, outputs, presence=None):
    if fusion_layer is None:
        return outputs[0]
    if not isinstance(fusion_layer, FusionLayer):
        raise TypeError(f"fusion must be a kfuse.layers.FusionLayer; received {type(fusion_layer).__name__}")
    if fusion_layer.built:
        raise ValueError(
            f"The fusion layer '{fusion_layer.name}' is already part of another model; "
            "pass a fresh instance (or a fusion name) to each stack() call"
        )
    if fusion_layer.branch_names is None:
        fusion_layer.branch_names = list(names)
    fusion_layer._check_shapes([tuple(o.shape) for o in outputs])
    if presence is not None:
        if not fusion_layer.supports_presence:
            raise ValueError(
                f"presence_input=True, but fusion layer '{fusion_layer.name}' "
                f"({type(fusion_layer).__name__}) does not support a presence mask"
            )
        return fusion_layer(outputs, presence=presence)
    return fusion_layer(outputs)


def warm_start_plan(kinds, widths, fusion_layer, meta, head):
    """(kind, reason): the branches' score kind when warm start applies, else None and why."""
    if head is None or head.activation is None:
        return None, f"the head {head} gives no class scores"
    if meta is not None:
        return None, "a meta-learner sits between the fusion and the head"
    if set(kinds) - {"probabilities", "logits"} or len(set(kinds)) != 1:
        return None, f"the branches hand over {sorted(set(kinds))}, not one kind of class scores ('probabilities' or 'logits')"
    if any(tuple(w) != (head.units,) for w in widths):
        return None, f"branch outputs {[tuple(w) for w in widths]} are not ({head.units},) class scores"
    if fusion_layer is not None:
        plain_concat = type(fusion_layer) is Concat and fusion_layer.units is None and not fusion_layer.normalize
        if not (plain_concat or type(fusion_layer) in (Average, WeightedAverage)):
            return None, f"fusion {type(fusion_layer).__name__} is not concat, average or weighted_average"
    if not isinstance(head, Classification) and not isinstance(head, MultiLabel) and head.units != 1:
        return None, f"head {head} is not a classification head"
    return kinds[0], None


def warm_start(top, head, kind, count, fusion_layer):
    """Set the head's kernel and bias so the top predicts what the branches' average does."""
    layer = top.get_layer(head.name)
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    units = head.units
    block = np.eye(units, dtype="float32")
    scale = 1.0 if kind == "logits" else WARM_SCALE
    new_kernel = np.zeros_like(kernel)
    if type(fusion_layer) is Concat:
        for i in range(count):
            new_kernel[i * units:(i + 1) * units] = block * (scale / count)
    else:
        new_kernel[:units] = block * scale
    new_bias = np.zeros_like(bias)
    if kind == "probabilities" and head.activation == "sigmoid":
        new_bias[:] = -0.5 * scale
    layer.set_weights([new_kernel, new_bias])


def check_warm(value):
    if value not in WARM_OPTIONS or isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"warm_start must be one of {WARM_OPTIONS}; received {value!r}")
    return value
