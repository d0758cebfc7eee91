"""Data-aware merging: methods that read inputs, not only weights.

``fisher`` (Matena & Raffel 2022), ``regmean`` (Jin et al. 2023), ``adamerging`` (Yang et
al. 2024, needs ``base``) and ``zipit`` (Stoica et al. 2024, MLPs), called through
``kfuse.merge.merge(models, name, data=...)``; ``repair_activations`` (Jordan et al. 2023)
rescales any merge's activations to its endpoints'. One file per method.

Example:

```python
import keras, numpy as np
from kfuse.merge import merge
def net():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
x1, x2 = np.ones((8, 3), "float32"), np.zeros((8, 3), "float32")
merged = merge([net(), net()], "regmean", data=[x1, x2], alpha=0.9)
```
"""

import difflib

from ..methods import METHODS, MergeMethod
from ..params import check_names
from .adamerging import adamerging
from .common import load_models, model_weights
from .data import model_data
from .fisher import fisher_merge
from .regmean import regmean_merge
from .repair import repair_activations
from .zipit import zipit_merge


def _fisher(models, base, xs, weights, fisher_floor, batch_size):
    return fisher_merge(models, xs, weights, fisher_floor, batch_size)


def _regmean(models, base, xs, weights, alpha, batch_size):
    return regmean_merge(models, xs, weights, alpha, batch_size)


def _adamerging(models, base, xs, weights, **kw):
    return adamerging(models, base, xs, **kw).model


def _zipit(models, base, xs, weights, stop_at, within):
    return zipit_merge(models, xs, stop_at, within)


_W = {"weight": 1.0}
DATA_METHODS = {
    m.name: m
    for m in (
        MergeMethod("fisher", _fisher, dict(_W), {"fisher_floor": 1e-6, "batch_size": 32}),
        MergeMethod("regmean", _regmean, dict(_W), {"alpha": 0.9, "batch_size": 256}),
        MergeMethod("adamerging", _adamerging, {}, {
            "granularity": "layer", "steps": 500, "lr": 1e-3, "init": 0.3, "batch_size": 64,
            "seed": 0}, needs_base=True),
        MergeMethod("zipit", _zipit, {}, {"stop_at": None, "within": True}, min_models=2),
    )
}


def check_method_name(name):
    """Raise for a name that is neither a weight method nor a data-aware one (closest named)."""
    if isinstance(name, MergeMethod) or name in METHODS or name in DATA_METHODS:
        return
    names = sorted(METHODS) + sorted(DATA_METHODS)
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown merge method {name!r}; expected one of {names}.{hint}")


def merge_with_data(models, method, base, data, model_parameters, parameters, max_rows=4096):
    """Run data-aware ``method`` (a name in ``DATA_METHODS``) on checked models and data."""
    method = DATA_METHODS[method]
    if data is None:
        raise ValueError(
            f"{method.name} learns from data: pass data= (inputs for each model's task: one "
            "array or tf.data per model, in the models' order, or one set for all)")
    if method.needs_base and base is None:
        raise ValueError(f"{method.name} needs base= (the model the others were fine-tuned "
                         "from): it learns coefficients of task vectors theta_i - theta_base.")
    if len(models) < method.min_models:
        raise ValueError(f"{method.name} needs at least {method.min_models} models, got "
                         f"{len(models)}")
    check_names(parameters, method)
    if model_parameters is not None:
        for i, params in enumerate(model_parameters):
            check_names(params, MergeMethod(method.name, None, method.model_parameters),
                        f"model_parameters[{i}]")
    models, base = load_models(models, base)
    xs = model_data(data, models, max_rows=max_rows)
    weights = model_weights(model_parameters, len(models))
    kwargs = {**method.global_parameters, **parameters}
    return method.fn(models, base, xs, weights, **kwargs)


__all__ = ["DATA_METHODS", "adamerging", "merge_with_data", "repair_activations"]
