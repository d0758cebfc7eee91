"""Copying a model the way its own class rebuilds itself: config, then weights and assets.

A KerasHub `Backbone` or `Task`, and a user's subclassed model, override `get_config` /
`from_config`: their class, not Keras's graph cloning, knows how to rebuild them
(`keras.models.clone_model` with a `clone_function` turns a `Task` into a plain
`Functional` without its `backbone` and `preprocessor`). kfuse rebuilds such a model with
`type(model).from_config(model.get_config())`, as a `.keras` file does, then gives the copy
the source's weights (`kfuse.branches.state`) and its assets: what a layer saves outside its
config and weights, such as a tokenizer's vocabulary (`save_assets` / `load_assets`, the
Keras saving protocol).
"""

import tempfile

import keras

GRAPH_CLASSES = ("Functional", "Sequential")


def rebuilt_by_class(layer):
    """Whether `layer` is a model of its own class (a KerasHub `Backbone` / `Task`, a
    subclassed model), which kfuse copies through its class, not by graph cloning."""
    return isinstance(layer, keras.Model) and type(layer).__name__ not in GRAPH_CLASSES


def rebuild(layer):
    """A new instance of `layer`'s class from its config (fresh weights, same name).

    A config without `name` (a user's `get_config` returning only its own arguments) is
    given the source's name when the constructor takes it, so the copy's layers are named
    as the source's.

    Example:

    ```python
    import keras
    from kfuse.branches.class_copy import rebuild

    dense = keras.layers.Dense(3, name="d")
    assert rebuild(dense).name == "d" and rebuild(dense) is not dense
    ```
    """
    cls = type(layer)
    config = layer.get_config()
    with keras.saving.custom_object_scope({cls.__name__: cls}):
        if "name" not in config:
            try:
                return cls.from_config({**config, "name": layer.name})
            except TypeError:  # a constructor that takes no `name`
                pass
        return cls.from_config(config)


def _asset_layers(root):
    """(path, layer) for `root` and every layer reachable from its attributes that keeps
    assets (has `save_assets` / `load_assets`): a Task's preprocessor tokenizer, for instance."""
    seen = set()
    stack = [("", root)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if callable(getattr(obj, "save_assets", None)) and callable(
            getattr(obj, "load_assets", None)
        ):
            yield path, obj
        for key, value in sorted(vars(obj).items()):
            values = value if isinstance(value, (list, tuple)) else [value]
            for i, item in enumerate(values):
                if isinstance(item, keras.layers.Layer):
                    stack.append((f"{path}/{key}{'' if item is value else i}", item))


def copy_assets(source, target):
    """Give every asset-keeping layer of `target` the assets of its twin in `source`
    (the layers are matched by their attribute path from the root).

    Example:

    ```python
    import keras
    from kfuse.branches.class_copy import copy_assets, rebuild

    lookup = keras.layers.StringLookup(vocabulary=["a", "b"])
    copy = rebuild(lookup)
    copy_assets(lookup, copy)  # nothing to copy: its vocabulary is in its config
    assert copy.get_vocabulary() == lookup.get_vocabulary()
    ```
    """
    targets = dict(_asset_layers(target))
    for path, layer in _asset_layers(source):
        twin = targets.get(path)
        if twin is None or type(twin) is not type(layer):
            continue
        with tempfile.TemporaryDirectory(prefix="kfuse_assets_") as folder:
            layer.save_assets(folder)
            twin.load_assets(folder)


def nested(model):
    """A functional model with `model` as its one layer, called on new inputs of the same
    names, shapes and dtypes: a `.keras` file then rebuilds `model` through its class
    (some KerasHub layers cannot be rebuilt alone, outside their backbone).

    Example:

    ```python
    import keras
    from kfuse.branches.class_copy import nested

    x = keras.Input((3,), name="x")
    base = keras.Model(x, keras.layers.Dense(2)(x), name="base")
    outer = nested(base)
    assert [layer.name for layer in outer.layers][1:] == [base.name]
    ```
    """

    def fresh_input(tensor):
        return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name)

    inputs = keras.tree.map_structure(fresh_input, model.input)
    return keras.Model(inputs, model(inputs), name=model.name)
