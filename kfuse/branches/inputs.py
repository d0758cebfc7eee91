"""A branch's inputs: names for auto-named inputs, and wrapping unbuilt or subclassed bases."""

import re

import keras

#: Names Keras gives inputs nobody named (the same pattern `kfuse.export` refuses).
AUTO_NAME = re.compile(r"^(input_layer|keras_tensor|input)(_\d+)?$")


def has_inputs(model):
    """Whether `model` has symbolic inputs (a functional model, or a built Sequential)."""
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def own_input_names(names, branch_name):
    """The base's input names, with Keras's auto-generated ones (`keras_tensor_22`,
    `input_layer_3`) replaced by `<branch>_input` (`<branch>_input_<i>` for several):
    serving clients address inputs by name, so an export must never meet an auto name."""
    auto = [n for n in names if AUTO_NAME.match(n)]
    renamed = []
    for i, n in enumerate(names):
        if not AUTO_NAME.match(n):
            renamed.append(n)
        elif len(auto) == 1:
            renamed.append(f"{branch_name}_input")
        else:
            renamed.append(f"{branch_name}_input_{i}")
    return renamed


def wrap_unbuilt(model, names, declared, branch_name):
    """A functional model calling `model` (an unbuilt Sequential or a subclassed model) on
    `keras.Input`s of the shapes declared in `Branch(inputs={name: shape})`."""
    kind = "a subclassed" if not isinstance(model, keras.Sequential) else "an unbuilt Sequential"
    if not names or any(declared.get(n) is None for n in names):
        raise ValueError(
            f"Branch '{branch_name}': the base '{model.name}' ({kind} model) has no defined "
            "inputs, so kfuse cannot read their names and shapes. Declare them: "
            "Branch(model, name=..., inputs={'x': (40,)}) (shape without the batch axis; "
            "a dict of several for several inputs); kfuse then calls the model on "
            "keras.Input tensors of those shapes."
        )
    tensors = {n: keras.Input(shape=declared[n], name=n) for n in names}
    arg = tensors[names[0]] if len(names) == 1 else dict(tensors)
    try:
        out = model(arg)
    except Exception as error:
        raise ValueError(
            f"Branch '{branch_name}': calling the base '{model.name}' ({kind} model) on inputs "
            f"{ {n: (None, *declared[n]) for n in names} } failed: {type(error).__name__}: {error}"
        ) from error
    return keras.Model(arg, out, name=model.name)
