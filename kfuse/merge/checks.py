"""Architecture checks: the first layer and weight where two models differ."""

import dataclasses

import keras
import numpy as np


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One weight of a model, in ``model.weights`` order."""

    index: int
    path: str
    layer: str
    layer_class: str
    shape: tuple
    dtype: str
    kind: str  # "float", "nonfloat" or "bn_stat"
    depth: float


def _walk(layer):
    yield layer
    if isinstance(layer, keras.Model):
        for sub in layer.layers:
            yield from _walk(sub)


def _owners(model):
    owner = {}
    for layer in _walk(model):
        for w in layer.weights:
            owner[id(w)] = layer
    return owner


def weight_specs(model):
    """``WeightSpec`` of every weight of ``model`` (owner layer, class, shape, dtype, kind).

    Example:

    ```python
    import keras
    from kfuse.merge.checks import weight_specs
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    print([(s.path, s.kind) for s in weight_specs(m)])
    ```
    """
    owner = _owners(model)
    weights = model.weights
    order = []
    for w in weights:
        layer = owner.get(id(w), model)
        if not order or order[-1] is not layer:
            order.append(layer)
    rank = {id(layer): i for i, layer in enumerate(order)}
    top = max(len(order) - 1, 1)
    specs = []
    for i, w in enumerate(weights):
        layer = owner.get(id(w), model)
        dtype = np.dtype(keras.backend.standardize_dtype(w.dtype))
        if isinstance(layer, keras.layers.BatchNormalization) and (
            w is layer.moving_mean or w is layer.moving_variance
        ):
            kind = "bn_stat"
        elif np.issubdtype(dtype, np.floating):
            kind = "float"
        else:
            kind = "nonfloat"
        specs.append(
            WeightSpec(i, w.path, layer.name, type(layer).__name__, tuple(w.shape), dtype.name,
                       kind, rank[id(layer)] / top)
        )
    return specs


def check_same(reference, specs, name, reference_name="models[0]"):
    """Raise ``ValueError`` naming the first layer and weight where ``specs`` differ.

    ``specs`` are ``WeightSpec`` (or ``(index, path, shape, dtype, layer_class)`` where a
    file's class is unknown, ``layer_class=None``).

    Example:

    ```python
    import keras
    from kfuse.merge.checks import check_same, weight_specs
    a = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    b = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    check_same(weight_specs(a), weight_specs(b), "models[1]")
    ```
    """
    for ref, got in zip(reference, specs, strict=False):
        where = f"{name} differs from {reference_name} at layer {ref.layer!r} weight {ref.path!r}"
        if got.layer_class is not None and got.layer_class != ref.layer_class:
            raise ValueError(
                f"{where}: layer class {got.layer_class} (layer {got.layer!r}) vs "
                f"{ref.layer_class}. Merge models of one architecture."
            )
        if tuple(got.shape) != tuple(ref.shape):
            raise ValueError(
                f"{where}: shape {tuple(got.shape)} vs {tuple(ref.shape)}. Merge models of "
                "one architecture."
            )
        if got.dtype != ref.dtype:
            raise ValueError(f"{where}: dtype {got.dtype} vs {ref.dtype}.")
    if len(specs) != len(reference):
        longer, n = (specs, len(reference)) if len(specs) > len(reference) else (reference, len(specs))
        extra = longer[n]
        raise ValueError(
            f"{name} has {len(specs)} weights, {reference_name} has {len(reference)}; the first "
            f"unmatched weight is {extra.path!r} of layer {extra.layer!r}. Merge models of one "
            "architecture."
        )
