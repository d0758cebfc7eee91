"""What a branch hands to fusion: a base's outputs as they are, probabilities, or logits.

kfuse never guesses. It reads the base's final activation and either converts exactly
or refuses with an explanation:

| base ends in            | output="logits"                        | output="probabilities" |
|-------------------------|----------------------------------------|------------------------|
| linear (no activation)  | as is                                  | softmax (sigmoid if 1 unit) |
| softmax / sigmoid in a layer with `activation` (Dense, Conv) | the same layer with a linear activation: exact logits | as is |
| a Softmax / Activation("softmax"/"sigmoid") layer | that layer's input: exact logits | as is |
| anything else           | refused                                | refused                |
"""

import difflib
import re

import keras

OUTPUT_KINDS = ("raw", "probabilities", "logits")


def activation_name(activation):
    if activation is None:
        return "linear"
    try:
        name = keras.activations.serialize(activation)
    except Exception:  # a custom activation object
        return getattr(activation, "__name__", repr(activation))
    if isinstance(name, dict):
        name = name.get("config", {}).get("name") or name.get("class_name")
    return str(name)


def producing_layer(model, tensor):
    """The layer of `model` whose output is `tensor` (public API: `layer.output`), or None."""
    for layer in reversed(model.layers):
        try:
            out = layer.output
        except (AttributeError, ValueError):  # never called, or called several times
            continue
        if any(t is tensor for t in keras.tree.flatten(out)):
            return layer
    return None


def final_layer(model):
    """The layer that produces a functional model's single output (None for several); where
    a nested model produces it (a `kfuse.FusedModel`'s `top`), that model's final layer."""
    outputs = model.outputs
    if len(outputs) != 1:
        return None
    layer = producing_layer(model, outputs[0])
    if layer is None:  # a nested model called more than once: the last operation produces it
        layer = (getattr(model, "operations", None) or [None])[-1]
        layer = layer if isinstance(layer, keras.Model) else None
    if isinstance(layer, keras.Model) and len(getattr(layer, "outputs", None) or ()) == 1:
        return final_layer(layer)  # a functional nested model (a subclassed one has no outputs)
    return layer


def base_outputs(model):
    """[(name, tensor)] of a functional model's outputs: dict keys, else layer names."""
    try:
        structure = model.output  # a functional model: its outputs as built (dict, list...)
    except AttributeError:  # a Sequential model: `output` is its call's, `outputs` its own
        structure = model.outputs
    if isinstance(structure, dict):
        return list(structure.items())
    tensors = keras.tree.flatten(structure)
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(tensors):
        names = [t.name for t in tensors]
    return list(zip(names, tensors, strict=True))


def describe_outputs(model):
    return ", ".join(
        f"#{i} {name!r} {tuple(t.shape)}" for i, (name, t) in enumerate(base_outputs(model))
    )


def check_select(select, branch_name):
    """`select` as None or a list of output names / indices."""
    if select is None:
        return None
    items = list(select) if isinstance(select, (list, tuple)) else [select]
    if not items or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in items):
        raise TypeError(
            f"Branch '{branch_name}': select= takes an output name, an index or a list of "
            f"them; received {select!r}"
        )
    return items


def select_outputs(model, select, branch_name):
    """[(name, tensor)] that the branch hands over: the one output, or the selected ones."""
    outputs = base_outputs(model)
    if select is None:
        if len(outputs) != 1:
            raise ValueError(
                f"Branch '{branch_name}': the base has {len(outputs)} outputs "
                f"({describe_outputs(model)}); say which to fuse: Branch(..., "
                f"select={outputs[0][0]!r}) (a name or index), or several, concatenated: "
                f"select={[n for n, _ in outputs]}"
            )
        return outputs
    names = [n for n, _ in outputs]
    chosen = []
    for item in select:
        if isinstance(item, int):
            if not -len(outputs) <= item < len(outputs):
                raise ValueError(
                    f"Branch '{branch_name}': select={item} is out of range; the base has "
                    f"{len(outputs)} outputs ({describe_outputs(model)})"
                )
            chosen.append(outputs[item])
        elif item in names:
            chosen.append(outputs[names.index(item)])
        else:
            close = difflib.get_close_matches(item, names, n=3, cutoff=0.4)
            raise ValueError(
                f"Branch '{branch_name}': the base has no output {item!r} (closest: "
                f"{close or 'none'}); its outputs: {describe_outputs(model)}. (`output=` takes "
                f"{OUTPUT_KINDS} or output names.)"
            )
    return chosen


def final_activation(layer):
    """'softmax', 'sigmoid', 'linear' or another name, plus whether it is a standalone layer."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax", True
    if isinstance(layer, keras.layers.Activation):
        return activation_name(layer.activation), True
    if hasattr(layer, "activation"):
        return activation_name(layer.activation), False
    return None, False


def convert_output(model, output, branch_name, tap=None, select=None):
    """Return (output tensor, kind) for `model` (a functional clone the branch owns).

    `select` (None or a list of output names / indices) picks the base outputs to hand
    over; several are each converted to `output`, flattened and concatenated. May set a
    final layer's activation to linear: the clone is private to the branch.
    """
    if output not in OUTPUT_KINDS:
        raise ValueError(
            f"Branch '{branch_name}': `output` must be one of {OUTPUT_KINDS}; received {output!r}"
        )
    if tap is not None:
        if output != "raw":
            raise ValueError(
                f"Branch '{branch_name}': tap={tap!r} hands over features; output={output!r} "
                "applies only to a base's final output. Leave output='raw'."
            )
        return model.get_layer(tap).output, "features"
    chosen = select_outputs(model, select, branch_name)
    tensors = [
        _convert_one(model, name, t, output, branch_name, len(chosen) > 1) for name, t in chosen
    ]
    if len(tensors) == 1:
        return tensors[0], output
    flat = [
        keras.layers.Flatten(name=f"{branch_name}_flatten_{i}")(t) if len(t.shape) > 2 else t
        for i, t in enumerate(tensors)
    ]
    return keras.layers.Concatenate(name=f"{branch_name}_outputs")(flat), output


def _convert_one(model, name, out, output, branch_name, several):
    if output == "raw":
        return out
    layer = producing_layer(model, out)
    nested = len(model.outputs) == 1 and (layer is None or isinstance(layer, keras.Model))  # read, never changed
    layer = final_layer(model) if nested else layer
    act, standalone = final_activation(layer) if layer is not None else (None, False)
    what = f"output {name!r}" if several or len(model.outputs) > 1 else "the base's output"
    if act is None:
        maker = type(layer).__name__ if layer is not None else "an operation that is not a layer"
        raise ValueError(
            f"Branch '{branch_name}': output={output!r} needs to know the final activation "
            f"of {what}, but it comes from {maker}, which has none kfuse can read. Use "
            "output='raw', or end the base in a layer with an explicit activation."
        )
    if act == "linear":
        if output == "logits":
            return out
        squash = "sigmoid" if out.shape[-1] == 1 else "softmax"
        suffix = "_" + re.sub(r"\W", "_", str(name)) if several else ""
        return keras.layers.Activation(squash, name=f"{branch_name}_{squash}{suffix}")(out)
    if act in ("softmax", "sigmoid"):
        if output == "probabilities":
            return out
        if nested:
            raise ValueError(
                f"Branch '{branch_name}': {what} ends in {act} (layer '{layer.name}' of a "
                f"nested model, which the branch does not change); output={output!r} needs "
                "it linear. Use output='probabilities' or 'raw'."
            )
        if standalone:
            return layer.input
        layer.activation = keras.activations.linear
        return out
    raise ValueError(
        f"Branch '{branch_name}': {what} ends in activation '{act}', which is neither "
        f"linear, softmax nor sigmoid, so it is not logits or probabilities and "
        f"output={output!r} cannot be honoured. Use output='raw'."
    )


def score_kind(model, kind):
    """What a branch sub-model provably hands over: `kind`, or for a "raw" output that a
    softmax / sigmoid produces (the final layer's activation, a `Softmax` or `Activation`
    layer), "probabilities". A "raw" output kfuse cannot read stays "raw".

    Example:

    ```python
    import keras
    from kfuse.branches.outputs import score_kind

    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    assert score_kind(base, "raw") == "probabilities"
    ```
    """
    if kind != "raw":
        return kind
    layer = final_layer(model)
    if isinstance(layer, keras.layers.Reshape) and layer.name.endswith("_squeeze"):  # Branch's squeeze
        layer = producing_layer(model, layer.input)
    activation = final_activation(layer)[0] if layer is not None else None
    return "probabilities" if activation in ("softmax", "sigmoid") else kind


def ends_linear(model):
    """Whether `model`'s final layer has a linear activation (it hands out logits)."""
    layer = final_layer(model)
    return layer is not None and final_activation(layer)[0] == "linear"


def default_loss(model, activation, one_hot=False, who=None):
    """The loss that trains `model` for a head with `activation` ("softmax", "sigmoid", or
    None for regression: mean squared error): cross-entropy from logits when the model
    ends linear, from probabilities otherwise; categorical for `one_hot` labels.

    `who` (a name for the error, e.g. "Branch 'a'"): refuse a model ending in another
    activation, whose outputs are neither logits nor probabilities; None takes them as
    probabilities.

    Example:

    ```python
    import keras
    from kfuse.branches.outputs import default_loss

    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    default_loss(net, "softmax").get_config()["from_logits"]  # True: it ends linear
    ```
    """
    if activation is None:
        return keras.losses.MeanSquaredError()
    layer = final_layer(model)
    act = final_activation(layer)[0] if layer is not None else None
    if who is not None and act not in ("softmax", "sigmoid", "linear"):
        raise ValueError(
            f"{who}: the base ends in activation {act!r}; kfuse cannot tell which loss trains it for "
            "this head. Give it one: Branch(..., fit={'loss': ...})"
        )
    from_logits = act == "linear"
    if activation == "softmax":
        if one_hot:
            return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.BinaryCrossentropy(from_logits=from_logits)


def head_loss(model, head, who):
    """`default_loss` for a `kfuse.layers.heads` head (its activation and label form); a model
    ending in another activation than linear, softmax or sigmoid is refused naming `who`."""
    return default_loss(model, head.activation, getattr(head, "labels", "sparse") == "one_hot", who)
