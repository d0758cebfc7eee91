"""`stack()` and `early_fusion()`: assemble branches, fusion, meta-learner and head."""

import contextlib

import keras

from kfuse.branches import Branch
from kfuse.heads import get_head
from kfuse.layers import FusionLayer, get_fusion
from kfuse.meta import apply_meta
from kfuse.model import FusedModel
from kfuse.names import check_name

RESERVED_NAMES = ("fusion", "passthrough", "meta_input")


def check_branches(branches):
    """The branches as a list, checked: non-empty, all `kfuse.Branch`, names unique."""
    if isinstance(branches, Branch):
        branches = [branches]
    if not isinstance(branches, (list, tuple)) or not branches:
        raise ValueError(f"stack() needs a non-empty list of kfuse.Branch; received {branches!r}")
    for b in branches:
        if not isinstance(b, Branch):
            raise TypeError(
                f"stack() takes kfuse.Branch objects; received {type(b).__name__}. "
                "Wrap models: kfuse.Branch(model, name=...)"
            )
    seen = {}
    for b in branches:
        if b.name in seen:
            raise ValueError(
                f"Duplicate branch name '{b.name}' (branches #{seen[b.name]} and "
                f"#{branches.index(b)}); every branch needs its own name"
            )
        seen[b.name] = branches.index(b)
    return list(branches)


def resolve_input_specs(branches, input_shapes=None):
    """One (shape, dtype) per input name, checked across every branch that reads it."""
    specs = {}
    owners = {}
    for key, shape in (input_shapes or {}).items():
        specs[key] = (tuple(shape), None)
        owners[key] = "input_shapes="
    for b in branches:
        for key in b.input_names:
            shape, dtype = b.input_shapes.get(key), b.input_dtypes.get(key)
            if key not in specs or specs[key][0] is None:
                old_dtype = specs.get(key, (None, None))[1]
                specs[key] = (shape, dtype or old_dtype)
                owners[key] = f"branch '{b.name}'"
                continue
            known_shape, known_dtype = specs[key]
            if shape is not None and tuple(shape) != tuple(known_shape):
                raise ValueError(
                    f"Input '{key}' has shape {tuple(shape)} for branch '{b.name}' but "
                    f"{tuple(known_shape)} for {owners[key]}; branches reading one input must agree"
                )
            if dtype is not None and known_dtype is not None and dtype != known_dtype:
                raise ValueError(
                    f"Input '{key}' has dtype {dtype} for branch '{b.name}' but {known_dtype} "
                    f"for {owners[key]}; branches reading one input must agree"
                )
            if dtype is not None and known_dtype is None:
                specs[key] = (known_shape, dtype)
    for key, (shape, _) in specs.items():
        if shape is None:
            readers = [b.name for b in branches if key in b.input_names]
            raise ValueError(
                f"Input '{key}' (read by branch(es) {readers}) has no known shape: no base "
                f"model reads it. Declare it, e.g. inputs={{'{key}': (40,)}} on the branch, "
                f"or stack(..., input_shapes={{'{key}': (40,)}})."
            )
    return specs


def _check_names(branches, specs, fusion_layer):
    taken = {key: f"input '{key}'" for key in specs}
    for b in branches:
        if b.name in taken or b.name in RESERVED_NAMES:
            clash = taken.get(b.name, "a name kfuse reserves")
            raise ValueError(f"Branch name '{b.name}' clashes with {clash}; rename the branch")
        taken[b.name] = f"branch '{b.name}'"


def strategy_scope(strategy):
    """(context manager, strategy) for a strategy name, object or None (no scope)."""
    if strategy is None:
        return contextlib.nullcontext(), None
    from kfuse.distribute import get_strategy  # TensorFlow only: imported lazily

    resolved = get_strategy(strategy)
    return resolved.scope(), resolved


def stack(
    branches,
    fusion="concat",
    meta=None,
    head=None,
    passthrough=False,
    name="kfuse_stack",
    meta_dropout=0.0,
    input_shapes=None,
    strategy=None,
    compile=True,
    optimizer="adam",
    presence_input=False,
):
    """Fuse branches into ONE functional Keras model.

    Args:
        branches: list of `kfuse.Branch`.
        fusion: a fusion name (see `kfuse.layers.fusion_names()`), a
            `kfuse.layers.FusionLayer`, or None for a single branch.
        meta: None, a tuple of hidden widths (Dense + ReLU, with `meta_dropout`), or any
            Keras layer / model / callable.
        head: an int (classes; logits out), a `kfuse.heads.*` object, or None (the fused
            output is the model output, e.g. for `Vote`).
        passthrough: also feed the raw inputs (flattened) to the meta-learner.
        name: model name.
        input_shapes: dict of input name -> shape for inputs no base model declares.
        strategy: None, a `tf.distribute.Strategy` or a name for
            `kfuse.distribute.get_strategy`; every variable is created in its scope.
        compile: compile with `optimizer`, the head's loss and metrics (needs a head).
        presence_input: add an input "presence", `(batch, number of branches)`, of 1
            (branch present) and 0 (missing modality) handed to the fusion layer, which
            must support masks. The model fills it with ones when the data lacks it.

    Returns:
        a `kfuse.FusedModel` (a functional `keras.Model`) whose inputs are a dict keyed by
        input name; with one input, a bare array is accepted too.

    Example:

    ```python
    import keras, kfuse

    mlp = keras.Sequential([keras.Input((40,)), keras.layers.Dense(10)])
    model = kfuse.stack([kfuse.Branch(mlp, name="mlp", inputs="signal", trainable=False),
                         kfuse.Branch(lambda x: keras.layers.Dense(16)(x), name="fresh",
                                      inputs="signal")],
                        fusion="concat", meta=(32,), head=10)
    ```
    """
    branches = check_branches(branches)
    head = get_head(head)
    if fusion is None and len(branches) > 1:
        raise ValueError(
            f"fusion=None works for one branch only; received {len(branches)} branches "
            f"{[b.name for b in branches]}. Valid fusions: {kfuse_fusion_names()}"
        )
    fusion_layer = get_fusion(fusion) if fusion is not None else None
    if isinstance(fusion, str):  # a stable layer name, not concat_1, concat_2, ... per process
        fusion_layer.name = fusion
    specs = resolve_input_specs(branches, input_shapes)
    for key in specs:  # names from input_shapes= too; Branch checks its own
        check_name(key, "input")
    _check_names(branches, specs, fusion_layer)
    scope, resolved_strategy = strategy_scope(strategy)
    with scope:
        inputs = {
            key: keras.Input(shape=shape, name=key, dtype=dtype) for key, (shape, dtype) in specs.items()
        }
        shapes = {key: shape for key, (shape, _) in specs.items()}
        outputs = []
        for b in branches:
            out, _ = b({k: inputs[k] for k in b.input_names}, shapes)
            outputs.append(out)
        presence = None
        if presence_input:
            if "presence" in inputs:
                raise ValueError("presence_input=True needs the input name 'presence' free")
            presence = keras.Input(shape=(len(branches),), name="presence")
            inputs["presence"] = presence
            shapes["presence"] = (len(branches),)
        fused = _fuse(fusion_layer, branches, outputs, presence)
        if passthrough:
            raw = [_flatten(inputs[k], f"passthrough_flatten_{k}") for k in inputs]
            fused = keras.layers.Concatenate(name="passthrough")([_flatten(fused, "meta_input"), *raw])
        x = apply_meta(meta, fused, dropout=meta_dropout)
        out = head(x) if head is not None else x
        info = {
            "branches": [
                {
                    "name": b.name,
                    "inputs": b.input_names,
                    "output_kind": b.output_kind,
                    "trainable": b.trainable,
                    "source": b.source,
                }
                for b in branches
            ],
            "inputs": {k: list(s) for k, s in shapes.items()},
            "fusion": fusion_layer.name if fusion_layer is not None else None,
            "head": head.get_config() if head is not None else None,
            "passthrough": bool(passthrough),
            "presence_input": bool(presence_input),
        }
        model = FusedModel(inputs, out, name=name, kfuse_info=info)
        if compile and head is not None:
            model.compile(optimizer=optimizer, loss=head.loss(), metrics=head.metrics())
    return model


def kfuse_fusion_names():
    from kfuse.layers import fusion_names

    return fusion_names()


def _fuse(fusion_layer, branches, outputs, presence=None):
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
        fusion_layer.branch_names = [b.name for b in branches]
    fusion_layer._check_shapes([tuple(o.shape) for o in outputs])
    if presence is not None:
        if not fusion_layer.supports_presence:
            raise ValueError(
                f"presence_input=True, but fusion layer '{fusion_layer.name}' "
                f"({type(fusion_layer).__name__}) does not support a presence mask"
            )
        return fusion_layer(outputs, presence=presence)
    return fusion_layer(outputs)


def _flatten(x, name):
    return keras.layers.Flatten(name=name)(x) if len(x.shape) > 2 else x


def early_fusion(network, inputs, head=None, meta=None, name="early_fusion", **stack_kwargs):
    """Early fusion: raw inputs, flattened and concatenated, feed ONE network.

    Args:
        network: a callable (e.g. a lambda building layers) or a `keras.Model` taking one
            `(batch, sum of flattened input widths)` tensor.
        inputs: dict of input name -> shape (without the batch axis).
        head, meta, name, **stack_kwargs: as for `stack`.

    Example:

    ```python
    import keras, kfuse

    model = kfuse.early_fusion(lambda x: keras.layers.Dense(64, activation="relu")(x),
                               inputs={"image": (8, 8), "tabular": (5,)}, head=10)
    ```
    """
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError(f"early_fusion needs inputs as a dict of name -> shape; received {inputs!r}")
    widths = {}
    for key, shape in inputs.items():
        if shape is None or any(d is None for d in shape):
            raise ValueError(f"early_fusion: input '{key}' needs a fully known shape; received {shape}")
        width = 1
        for d in shape:
            width *= int(d)
        widths[key] = width
    total = sum(widths.values())
    if isinstance(network, keras.Model):
        expected = network.inputs[0].shape[-1] if network.inputs else None
        if expected is not None and expected != total:
            raise ValueError(
                f"early_fusion: the network takes width {expected} but the inputs flatten to "
                f"{total} ({widths})"
            )

    def build(tensors):
        if not isinstance(tensors, dict):
            tensors = {next(iter(inputs)): tensors}
        flat = [_flatten(tensors[k], f"early_flatten_{k}") for k in inputs]
        joined = flat[0] if len(flat) == 1 else keras.layers.Concatenate(name="early_concat")(flat)
        return network(joined)

    branch = Branch(build, name="early", inputs=dict(inputs))
    return stack([branch], fusion=None, meta=meta, head=head, name=name, **stack_kwargs)
