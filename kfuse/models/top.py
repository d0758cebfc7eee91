"""`model.top`: the layers above the branches (fusion, passthrough, meta-learner, head).

`kfuse.stack` builds them as ONE functional `keras.Model` named "top", whose inputs are
named: one per branch (the branch's output, keyed by branch name), then the raw
model inputs the top reads itself (every input with `passthrough=True`; the "presence"
mask with `presence_input=True`); it takes them as a dict keyed by those names (or a list
in that order). The fused model calls `top` on its branch outputs, so
training `model.top` on cached branch outputs trains the fused model's own layers: this
is how `fit_head`, the `Stacker`, cached tuner trials and `compare`'s ablation work.

Warm start (`warm_start="auto"`, the default of `kfuse.stack`): when every branch
provably hands over class scores of the head's width -- declared
(`Branch(output="probabilities")` or `output="logits"`), or, with the default
`output="raw"`, a base whose final layer ends in a softmax or sigmoid (a Dense / Conv
activation, a `Softmax` or `Activation` layer; `kfuse.branches.outputs.score_kind`) -- all
of one kind, the fusion is "concat" (no projection or normalisation), "average" or
"weighted_average", "median", "trimmed_mean" (robust averages: the stack starts as
that average, for two branches the plain one) or "soft_vote" (inside a `ModalityDropout`
too), the meta-learner is none or a tuple
of hidden widths wide enough to carry the average, and the head is `Classification`,
`Binary` or `MultiLabel`, the top starts as the average of its branches: before any
training the stack predicts exactly the class the plain (for weighted_average: the
initially uniform, or the given fixed) average of its branches predicts. Logit branches:
the head's logits are the average logits, so its probabilities equal the average's
softmax / sigmoid. Probability branches: the logits are `WARM_SCALE` times the average
probabilities (a sigmoid head subtracts one half first), so the predicted class is the
average's. Passthrough inputs start at weight 0.
"""

import keras
import numpy as np

from kfuse.layers import (
    Average,
    Concat,
    FusionLayer,
    Median,
    ModalityDropout,
    TrimmedMean,
    Vote,
    WeightedAverage,
)
from kfuse.layers.heads import Classification, MultiLabel
from kfuse.layers.meta import apply_meta

TOP_NAME = "top"
#: logits = WARM_SCALE * average probability for a warm-started head over probabilities
WARM_SCALE = 10.0
WARM_OPTIONS = ("auto", True, False)
#: fusions whose output is an average (plain, weighted, robust) of the branches' class scores
AVERAGING = (Average, WeightedAverage, Median, TrimmedMean)


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


def _plain_fusion(fusion_layer):
    """The fusion that runs at inference (a `ModalityDropout` is its inner fusion then)."""
    return fusion_layer.fusion if isinstance(fusion_layer, ModalityDropout) else fusion_layer


def _meta_widths(meta):
    """The hidden widths of a tuple meta-learner (`apply_meta`'s Dense + ReLU), else None."""
    if meta is None:
        return ()
    if isinstance(meta, int) and not isinstance(meta, bool):
        return (meta,)
    if isinstance(meta, (tuple, list)) and all(isinstance(w, int) and not isinstance(w, bool) for w in meta):
        return tuple(meta)
    return None


def warm_start_plan(kinds, widths, fusion_layer, meta, head, names=None):
    """(kind, reason): the branches' score kind when warm start applies, else None and why.

    `kinds` are the branches' *proven* score kinds (`kfuse.branches.outputs.score_kind`);
    the reason names what blocks the warm start and what to change.
    """
    names = list(names) if names is not None else [f"#{i}" for i in range(len(kinds))]
    if head is None or head.activation is None:
        return None, f"the head {head} gives no class scores"
    if not isinstance(head, (Classification, MultiLabel)) and head.units != 1:
        return None, f"head {head} is not a classification head"
    unknown = [n for n, k in zip(names, kinds, strict=True) if k not in ("probabilities", "logits")]
    if unknown:
        return None, (
            f"branch(es) {unknown} hand over {sorted({k for k in kinds if k not in ('probabilities', 'logits')})} "
            "outputs that do not end in a softmax or sigmoid, so kfuse cannot prove they are class scores; "
            "declare them: Branch(..., output='logits') (or 'probabilities')"
        )
    if len(set(kinds)) != 1:
        mixed = dict(zip(names, kinds, strict=True))
        return None, f"the branches hand over different kinds of class scores {mixed}; declare one kind for all, e.g. output='logits'"
    if any(tuple(w) != (head.units,) for w in widths):
        shown = {n: tuple(w) for n, w in zip(names, widths, strict=True)}
        return None, f"branch outputs {shown} are not ({head.units},) class scores of the head's width"
    kind, reason = _fused_kind(kinds[0], _plain_fusion(fusion_layer))
    if kind is None:
        return None, reason
    meta_widths = _meta_widths(meta)
    if meta_widths is None:
        return None, f"the meta-learner {type(meta).__name__} is not a tuple of hidden widths"
    need = head.units * len(_signs(kind))
    if any(w < need for w in meta_widths):
        return None, f"the meta-learner's widths {list(meta_widths)} are narrower than the {need} units an average of {kind} needs"
    return kind, None


def _fused_kind(kind, fusion):
    """(kind of the fused class scores, None) for an averaging fusion, else (None, why)."""
    if fusion is None or type(fusion) in AVERAGING:
        return kind, None
    if type(fusion) is Concat and fusion.units is None and not fusion.normalize:
        return kind, None
    if type(fusion) is Vote and fusion.mode == "soft":  # averages probabilities (softmax of logits)
        return ("probabilities" if fusion.inputs_are == "logits" else kind), None
    return None, (
        f"fusion {type(fusion).__name__} does not average the branches; use concat, average, "
        "weighted_average, median, trimmed_mean or soft_vote"
    )


def _signs(kind):
    """Probabilities (>= 0) pass ReLU as they are; logits need a +x and a -x unit each."""
    return (1.0,) if kind == "probabilities" else (1.0, -1.0)


def warm_start(top, head, kind, count, fusion_layer, meta=None):
    """Set the meta-learner and head weights so the top predicts the branches' average.

    Without a meta-learner the head is an identity over the fused class scores. With a
    tuple meta-learner (Dense + ReLU) the first units of each hidden layer carry the
    average (probabilities as they are; logits as a +x and a -x unit, since ReLU drops
    negatives) and the head reads only those at the start; the other units keep Keras's
    initialisation, their weights into the next layer start at zero, so they contribute
    nothing at step 0 and learn from there.
    """
    units = head.units
    signs = _signs(kind)
    width = units * len(signs)
    block = np.eye(units, dtype="float32")
    spread = np.concatenate([block * s for s in signs], axis=1)  # (units, width)
    previous = None  # width of the carried average in the previous layer's output
    for i, _ in enumerate(_meta_widths(meta)):
        layer = top.get_layer(f"meta_dense_{i}")
        kernel, bias = (np.asarray(w) for w in layer.get_weights())
        if previous is None:
            kernel[:, :width] = _fused_average(kernel.shape[0], units, count, fusion_layer) @ spread
        else:
            kernel[:, :width] = 0.0
            kernel[:width, :width] = np.eye(width, dtype="float32")
        bias[:width] = 0.0
        layer.set_weights([kernel, bias])
        previous = width
    layer = top.get_layer(head.name)
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    scale = 1.0 if kind == "logits" else WARM_SCALE
    new_kernel = np.zeros_like(kernel)
    if previous is None:
        new_kernel[:] = _fused_average(kernel.shape[0], units, count, fusion_layer) * scale
    else:
        new_kernel[:width] = spread.T * scale
    new_bias = np.zeros_like(bias)
    if kind == "probabilities" and head.activation == "sigmoid":
        new_bias[:] = -0.5 * scale
    layer.set_weights([new_kernel, new_bias])


def _fused_average(rows, units, count, fusion_layer):
    """(rows, units): the map from the fused tensor (passthrough columns after it: zero)
    to the average of the branches' class scores."""
    matrix = np.zeros((rows, units), "float32")
    block = np.eye(units, dtype="float32")
    if type(_plain_fusion(fusion_layer)) is Concat:
        for i in range(count):
            matrix[i * units:(i + 1) * units] = block / count
    else:
        matrix[:units] = block
    return matrix


def check_warm(value):
    if value not in WARM_OPTIONS or isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"warm_start must be one of {WARM_OPTIONS}; received {value!r}")
    return value
