"""Copying a base model with its preprocessing state, and re-adapting that state.

`keras.models.clone_model` rebuilds every layer from its config, so what a layer learned
through `adapt()` is lost: an adapted `Normalization` comes back with mean 0 and
variance 1 (its statistics are weights, but the tensors it computes with are set only by
`adapt`, `finalize_state` or loading), an adapted `StringLookup` / `IntegerLookup` /
`TextVectorization` comes back with an empty, uninitialised lookup table ("Table not
initialized"), and in `tf_idf` mode cannot even be called (no IDF weights). kfuse copies
each layer with Keras's own saving protocol instead, the one a `.keras` file uses:

- the vocabulary (`get_vocabulary` / `set_vocabulary`, with the IDF weights in `tf_idf`
  mode) is set on the new lookup layer before the clone calls it;
- then, layer by layer, `save_own_variables` / `load_own_variables` copies the weights
  and runs the layer's own post-load step (`Normalization.finalize_state`).

So a branch computes exactly what its base computes, and what a `.keras` file of it
reloads. `Discretization` (bin boundaries), `CategoryEncoding` and `Hashing` keep their
state in their config and clone as they are.
"""

import keras
import numpy as np

from kfuse.branches.class_copy import copy_assets, rebuild, rebuilt_by_class


def is_adaptable(layer):
    """Whether `layer` is a preprocessing layer with state learned by `adapt()`."""
    return callable(getattr(layer, "adapt", None)) and not isinstance(layer, keras.Model)


def is_graph_model(layer):
    """A functional or Sequential model (whose layers clone one by one); a subclassed
    model is copied as one layer, by its config and weights."""
    return isinstance(layer, keras.Model) and any(
        c.__name__ in ("Functional", "Sequential") for c in type(layer).__mro__
    )


def _has_vocabulary(layer):
    return callable(getattr(layer, "get_vocabulary", None)) and callable(
        getattr(layer, "set_vocabulary", None)
    )


def _own_store(layer):
    """The layer's own variables as NEW numpy arrays (copies, never aliases).

    `save_own_variables` stores the variables themselves; loading those into another
    layer would share their buffers, and on JAX a `fit` of the copy donates (deletes)
    them: the user's model could no longer predict ("Invalid buffer passed to Execute()").
    """
    store = {}
    layer.save_own_variables(store)
    return {key: np.array(keras.ops.convert_to_numpy(value), copy=True) for key, value in store.items()}


def copy_vocabulary(source, target):
    """Give `target` (a lookup or TextVectorization layer) the vocabulary of `source`."""
    if source.get_config().get("vocabulary") is not None:
        return  # given at construction: part of the config, so already on `target`
    if not source.get_vocabulary(include_special_tokens=False):
        return  # never adapted: nothing to copy
    idf = _own_store(source).get("idf_weights")
    vocabulary = source.get_vocabulary(include_special_tokens=True)
    if idf is not None:  # padded to max_tokens when pad_to_max_tokens=True: keep the vocabulary's part
        target.set_vocabulary(vocabulary, idf_weights=np.asarray(idf)[: len(vocabulary)])
    else:
        target.set_vocabulary(vocabulary)


def copy_layer_state(source, target, weights=True):
    """Copy `source`'s variables (all, or only preprocessing state) onto `target`."""
    if not weights and not is_adaptable(source):
        return
    store = _own_store(source)
    target.load_own_variables(store)
    if weights and len(source.weights) > len(store):  # a layer holding sub-layers
        target.set_weights(source.get_weights())


def _layer_pairs(source, target):
    """(source layer, target layer) for every leaf layer of two models of one structure."""
    if len(source.layers) != len(target.layers):
        raise ValueError(
            f"Model '{source.name}' and its clone differ in their layers "
            f"({len(source.layers)} vs {len(target.layers)}); cannot copy their state"
        )
    for a, b in zip(source.layers, target.layers, strict=True):
        # no state in an input; a class's own rebuild may name its layers anew (CLIP's)
        renamed = isinstance(a, keras.layers.InputLayer) or rebuilt_by_class(source)
        if type(a) is not type(b) or (a.name != b.name and not renamed):
            raise ValueError(
                f"Model '{source.name}': its clone has layer {b.name!r} ({type(b).__name__}) "
                f"where the base has {a.name!r} ({type(a).__name__}); cannot copy their state"
            )
        if is_graph_model(a):
            yield from _layer_pairs(a, b)
        else:
            yield a, b


def clone_with_state(model, weights=True):
    """A copy of `model` that computes exactly what it computes.

    A functional / Sequential model is cloned layer by layer; a model of its own class (a
    KerasHub `Backbone` or `Task`, a subclassed model nested in a graph) is rebuilt by its
    class (`kfuse.branches.class_copy`), with its assets (a tokenizer's vocabulary).

    With `weights=False` only the preprocessing state (vocabularies, normalisation
    statistics) is kept and every other weight is freshly initialised: the model a
    `Stacker` fold trains.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.branches.state import clone_with_state

    lookup = keras.layers.StringLookup()
    lookup.adapt(np.array(["cat", "dog", "bird", "dog"]))
    base = keras.Sequential([keras.Input((1,), dtype="string"), lookup, keras.layers.Embedding(5, 2)])
    fresh = clone_with_state(base, weights=False)  # what a Stacker fold trains
    assert fresh.layers[0].get_vocabulary() == lookup.get_vocabulary()  # the vocabulary kept
    assert not np.allclose(fresh.layers[1].get_weights()[0], base.layers[1].get_weights()[0])  # new weights
    ```
    """
    if rebuilt_by_class(model) and is_graph_model(model):  # a KerasHub Backbone / Task
        clone = rebuild(model)
        copy_assets(model, clone)
    else:
        clone = _clone_graph(model)
    for source, target in _layer_pairs(model, clone):
        copy_layer_state(source, target, weights=weights)
    return clone


def _clone_layer(layer):
    """One layer of a graph model, copied: a nested graph model layer by layer, a model of
    its own class (a hub backbone, a subclassed model) through its class, any other layer
    from its config (with an adapted vocabulary)."""
    if rebuilt_by_class(layer):
        new = rebuild(layer)
        copy_assets(layer, new)
        return new
    if is_graph_model(layer):
        return _clone_graph(layer)
    new = layer.__class__.from_config(layer.get_config())
    if _has_vocabulary(layer):
        copy_vocabulary(layer, new)
    return new


def _clone_graph(model):
    """A graph model copied layer by layer (`_clone_layer`); one of plain layers only is
    rebuilt from its config, which builds the same layers in the same order in about half
    the time `clone_model` takes (a Branch copies each of an ensemble's members)."""
    if all(_plain(layer) for layer in model.layers):
        return type(model).from_config(model.get_config())
    return keras.models.clone_model(model, clone_function=_clone_layer)


def _plain(layer):
    """A layer `_clone_layer` copies from its config alone (no nested model, no vocabulary)."""
    return not isinstance(layer, keras.Model) and not _has_vocabulary(layer)


def _adapted_by_user_data(layer):
    """Whether the layer's state came from `adapt()` (not from constructor arguments)."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.Normalization):
        return config.get("mean") is None
    if isinstance(layer, keras.layers.Discretization):
        return config.get("num_bins") is not None
    if _has_vocabulary(layer):
        return config.get("vocabulary") is None and bool(
            layer.get_vocabulary(include_special_tokens=False)
        )
    return True


def _size(layer):
    return layer.vocabulary_size() if callable(getattr(layer, "vocabulary_size", None)) else None


def _adapt(layer, data, where):
    before = _size(layer)
    try:
        layer.adapt(data)
    except RuntimeError as error:  # Keras: the vocabulary size is fixed once called
        raise ValueError(
            f"{where}: re-adapting layer '{layer.name}' on these rows changes its vocabulary "
            f"size, which its output width depends on ({error}). Give it max_tokens=N and "
            "pad_to_max_tokens=True, so every fold's vocabulary has one size."
        ) from None
    after = _size(layer)
    if before is not None and after > before:
        raise ValueError(
            f"{where}: re-adapting layer '{layer.name}' on these rows gives {after} tokens, "
            f"more than the {before} the model was built for (indices the layers after it "
            "cannot take). Give it max_tokens=N, with the layers after it sized for N."
        )


def _operation_input(layer):
    """The tensor `layer` (a nested model) is called on in its parent's graph."""
    return keras.Operation.input.fget(layer)


def readapt_preprocessing(model, x, where=None, batch_size=1024):
    """Re-adapt, in place, every adapted preprocessing layer of `model` on the rows `x`.

    Layers are re-adapted in graph order, each on what reaches it from `x` through the
    layers before it (already re-adapted), including layers inside nested sub-models.
    Layers whose state came from their constructor (a given `vocabulary`, `mean`,
    `bin_boundaries`) are left as they are. Returns the names of the re-adapted layers.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.branches.state import readapt_preprocessing

    x = np.random.default_rng(0).normal(5, 3, size=(20, 4)).astype("float32")
    norm = keras.layers.Normalization()
    norm.adapt(x)
    model = keras.Sequential([keras.Input((4,)), norm, keras.layers.Dense(2)])
    readapt_preprocessing(model, x[:10])  # ['normalization...']
    assert np.allclose(np.asarray(norm.mean).ravel(), x[:10].mean(0), atol=1e-5)
    ```
    """
    where = where or f"Model '{model.name}'"
    done = []

    def walk(owner, data):
        for layer in owner.layers:
            if is_graph_model(layer) and any(is_adaptable(inner) for inner in _leaves(layer)):
                feed = keras.Model(owner.inputs, _operation_input(layer))
                walk(layer, feed.predict(data, batch_size=batch_size, verbose=0))
            elif is_adaptable(layer) and _adapted_by_user_data(layer):
                feed = keras.Model(owner.inputs, layer.input)
                _adapt(layer, feed.predict(data, batch_size=batch_size, verbose=0), where)
                done.append(layer.name)

    walk(model, x)
    return done


def _leaves(model):
    for layer in model.layers:
        if is_graph_model(layer):
            yield from _leaves(layer)
        else:
            yield layer
