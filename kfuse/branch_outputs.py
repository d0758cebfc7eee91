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


def final_layer(model):
    """The operation that produces a functional model's single output."""
    outputs = model.outputs
    if len(outputs) != 1:
        return None
    history = getattr(outputs[0], "_keras_history", None)
    return history[0] if history else None


def final_activation(layer):
    """'softmax', 'sigmoid', 'linear' or another name, plus whether it is a standalone layer."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax", True
    if isinstance(layer, keras.layers.Activation):
        return activation_name(layer.activation), True
    if hasattr(layer, "activation"):
        return activation_name(layer.activation), False
    return None, False


def convert_output(model, output, branch_name, tap=None):
    """Return (output tensor, kind) for `model` (a functional clone the branch owns).

    May set the final layer's activation to linear: the clone is private to the branch.
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
    if output == "raw":
        return model.outputs[0], "raw"
    layer = final_layer(model)
    act, standalone = final_activation(layer) if layer is not None else (None, False)
    if act is None:
        raise ValueError(
            f"Branch '{branch_name}': output={output!r} needs to know the base's final "
            f"activation, but its last operation ({type(layer).__name__}) has none kfuse can "
            "read. Use output='raw', or end the base in a layer with an explicit activation."
        )
    out = model.outputs[0]
    if act == "linear":
        if output == "logits":
            return out, "logits"
        squash = "sigmoid" if out.shape[-1] == 1 else "softmax"
        return keras.layers.Activation(squash, name=f"{branch_name}_{squash}")(out), "probabilities"
    if act in ("softmax", "sigmoid"):
        if output == "probabilities":
            return out, "probabilities"
        if standalone:
            return layer.input, "logits"
        layer.activation = keras.activations.linear
        return out, "logits"
    raise ValueError(
        f"Branch '{branch_name}': the base ends in activation '{act}', which is neither "
        f"linear, softmax nor sigmoid, so its outputs are not logits or probabilities and "
        f"output={output!r} cannot be honoured. Use output='raw'."
    )
