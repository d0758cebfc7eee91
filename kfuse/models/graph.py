"""`stack()` and `early_fusion()`: assemble branches, fusion, meta-learner and head."""

import warnings

import keras

from kfuse.branches.branch import Branch
from kfuse.branches.outputs import score_kind
from kfuse.distribute.strategy import strategy_scope, sync_from_chief
from kfuse.layers import get_fusion
from kfuse.layers.heads import get_head, head_config
from kfuse.models.fused import FusedModel
from kfuse.models.top import TOP_NAME, build_top, check_warm, warm_start_plan
from kfuse.models.top import warm_start as warm_start_top  # `warm_start` is also stack()'s argument
from kfuse.utils.names import check_name
from kfuse.version import __version__

RESERVED_NAMES = ("fusion", "passthrough", "meta_input", TOP_NAME)


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
    warm_start="auto",
):
    """Fuse branches into ONE functional Keras model: the branches, then `model.top`.

    Args:
        branches (list[Branch]): list of `kfuse.Branch`.
        fusion (str | keras.layers.Layer | None): a fusion name (see `kfuse.layers.fusion_names()`), a
            `kfuse.layers.FusionLayer`, or None for a single branch.
        meta (tuple[int, ...] | Callable | keras.layers.Layer | None): None, a tuple of hidden
            widths (Dense + ReLU, with `meta_dropout`), or any Keras layer / model / callable.
        head (int | object | None): an int (classes; logits out), a `kfuse.layers.heads.*` object, or None
            (the fused output is the model output, e.g. for `Vote`).
        passthrough (bool): also feed the raw inputs (flattened) to the meta-learner.
        name (str): model name.
        input_shapes (dict | None): dict of input name -> shape for inputs no base model declares.
        strategy (tf.distribute.Strategy | str | None): None, a `tf.distribute.Strategy` or a name
            for `kfuse.distribute.get_strategy`; every variable is created in its scope.
        compile (bool): compile with `optimizer`, the head's loss and metrics (needs a head).
        presence_input (bool): add an input "presence", `(batch, number of branches)`, of 1
            (branch present) and 0 (missing modality) handed to the fusion layer, which
            must support masks. The model fills it with ones when the data lacks it.
        warm_start (str | bool): "auto" (default) starts the top as the average of the branches
            where kfuse can prove they hand over class scores of the head's width (declared logits /
            probabilities, or a base ending in softmax / sigmoid with the default output="raw"),
            fused by an averaging fusion or concat, under no meta-learner or a tuple one wide
            enough, with a classification head (see `kfuse.models.top`): the untrained stack predicts what
            its branches' average predicts. Where branches of the head's width cannot warm-start, a
            UserWarning names the reason and the fix. True requires it (a ValueError says why it
            cannot apply); False keeps Keras's random initialisation, silently.

    Returns:
        FusedModel: a `kfuse.FusedModel` (a functional `keras.Model`) whose inputs are a dict keyed
            by input name; with one input, a bare array is accepted too. Its layers are the input
            layers, one sub-model per branch, and `model.top` (fusion, passthrough, meta-learner and
            head as one `keras.Model`, called on the branch outputs).

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
    warm = check_warm(warm_start)
    scope, resolved_strategy = strategy_scope(strategy)
    with scope:
        inputs = {
            key: keras.Input(shape=shape, name=key, dtype=dtype) for key, (shape, dtype) in
                specs.items()
        }
        shapes = {key: shape for key, (shape, _) in specs.items()}
        outputs, kinds = {}, []
        for b in branches:
            out, sub_model = b({k: inputs[k] for k in b.input_names}, shapes)
            outputs[b.name] = out
            kinds.append(score_kind(sub_model, b.output_kind))
        if presence_input:
            if "presence" in inputs:
                raise ValueError("presence_input=True needs the input name 'presence' free")
            inputs["presence"] = keras.Input(shape=(len(branches),), name="presence")
            shapes["presence"] = (len(branches),)
        raw_names = list(inputs) if passthrough else (["presence"] if presence_input else [])
        top = build_top(
            {n: (tuple(o.shape[1:]), o.dtype) for n, o in outputs.items()},
            {k: (tuple(inputs[k].shape[1:]), inputs[k].dtype) for k in raw_names},
            fusion_layer, meta, head, passthrough, meta_dropout, presence=presence_input,
        )  # fmt: skip
        widths = [o.shape[1:] for o in outputs.values()]
        kind, reason = warm_start_plan(kinds, widths, fusion_layer, meta, head, names=list(outputs))
        if warm is True and kind is None:
            raise ValueError(f"warm_start=True does not apply: {reason}. Use warm_start='auto' or False.")
        if warm and kind is not None:
            warm_start_top(top, head, kind, len(branches), fusion_layer, meta)
        if warm == "auto" and kind is None and _looks_like_class_scores(widths, head):
            warnings.warn(
                f"kfuse.stack: the head starts from random weights, not as the average of the "
                f"branches (warm start), because {reason}. Pass warm_start=False to start cold "
                "without this warning.",
                UserWarning,
                stacklevel=2,
            )
        out = top([*outputs.values(), *(inputs[k] for k in raw_names)])
        info = {
            "version": __version__,
            "branches": [
                {
                    "name": b.name,
                    "inputs": b.input_names,
                    "output_kind": b.output_kind,
                    "trainable": b.trainable,
                    "source": b.source,
                    "lora_rank": b.lora_rank,
                }
                for b in branches
            ],
            "inputs": {k: list(s) for k, s in shapes.items()},
            "fusion": fusion_layer.name if fusion_layer is not None else None,
            "head": head_config(head),
            "passthrough": bool(passthrough),
            "presence_input": bool(presence_input),
            "top_inputs": [t.name for t in top.inputs],
            "warm_start": kind is not None and bool(warm),
        }
        model = FusedModel(inputs, out, name=name, kfuse_info=info, strategy=resolved_strategy)
        sync_from_chief(resolved_strategy, model.weights)  # the bases' copied weights, too
        if compile and head is not None:
            optimizer = _optimizer_in_scope(optimizer, resolved_strategy)
            model.compile(optimizer=optimizer, loss=head.loss(), metrics=head.metrics())
    return model


def _optimizer_in_scope(optimizer, strategy):
    """`optimizer` re-made from its config inside `strategy`'s scope when it was made outside.

    A TensorFlow Keras optimizer keeps the strategy current when it was made (its private
    `_distribution_strategy`); made before the scope, `fit` fails with "Mixing different
    tf.distribute.Strategy objects". `stack(..., strategy=s, optimizer=Adam(3e-3))` is the
    natural way to write it, so the same settings are re-made in the scope here.
    """
    made_under = getattr(optimizer, "_distribution_strategy", None)  # TF backend only
    if strategy is None or made_under is None or made_under is strategy:
        return optimizer
    return optimizer.__class__.from_config(optimizer.get_config())


def _looks_like_class_scores(widths, head):
    """Whether every branch output has the width of a classification head: then a cold
    start is worth a warning (feature branches of other widths never warm-start)."""
    units = getattr(head, "units", None)
    return head is not None and head.activation is not None and all(tuple(w) == (units,) for w in widths)


def kfuse_fusion_names():
    from kfuse.layers import fusion_names

    return fusion_names()


def _flatten(x, name):
    return keras.layers.Flatten(name=name)(x) if len(x.shape) > 2 else x


def early_fusion(network, inputs, head=None, meta=None, name="early_fusion", **stack_kwargs):
    """Early fusion: raw inputs, flattened and concatenated, feed ONE network.

    Args:
        network (Callable | keras.Model): a callable (e.g. a lambda building layers) or a
            `keras.Model` taking one `(batch, sum of flattened input widths)` tensor.
        inputs (dict[str, tuple]): dict of input name -> shape (without the batch axis).
        head (int | object | None): as for `stack`.
        meta (tuple[int, ...] | Callable | keras.layers.Layer | None): as for `stack`.
        name (str): as for `stack`.
        **stack_kwargs (Any): as for `stack`.

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
