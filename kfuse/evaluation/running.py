"""Each compared model run on the evaluation data: its raw outputs and where they came from.

`run_model` takes whatever `kfuse.compare` was handed (a Keras model, a `FusedModel`, a
fitted `Stacker`, anything with `predict` / `predict_proba`, or a prediction array), feeds
it the inputs it reads (a dict of inputs matched by the model's input names, a KerasHub
Task branch's raw strings tokenized) and returns its outputs as one array with their
source ("array", "predict", "predict_proba"). `kfuse.evaluation.predictions.collect` turns
them into aligned probabilities or values.

Example:

```python
import numpy as np
from kfuse.evaluation.running import run_model

values, source = run_model("net", np.array([[0.9, 0.1]]), None, "auto", 256)
source  # "array": a prediction array is taken as it is
```
"""

import difflib

import numpy as np


def raw_tokenized(name, model, x):
    """`x` with the raw strings of a kfuse model's KerasHub Task branches tokenized (a
    FusedModel's or a fitted Stacker's); other models' data as it is."""
    from kfuse.branches.raw_inputs import tokenized, tokenized_for_branches
    from kfuse.models.fused import FusedModel

    where = f"compare(): model '{name}'"
    if isinstance(model, FusedModel):
        return tokenized(model, x, where)
    if getattr(model, "branches_", None) and hasattr(model, "model_"):
        return tokenized_for_branches(model.branches_, x, where)
    return x


def is_array(obj):
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and not hasattr(obj, "predict")


def fused_model(obj):
    """The kfuse FusedModel behind `obj` (itself, or a fitted Stacker's `model_`), or None."""
    from kfuse.models.fused import FusedModel

    if isinstance(obj, FusedModel):
        return obj
    inner = getattr(obj, "model_", None)
    return inner if isinstance(inner, FusedModel) else None


def head_task(obj):
    """'classification', 'regression', or None when `obj` carries no kfuse head."""
    from kfuse.layers import heads

    model = fused_model(obj)
    head = model.head if model is not None else None
    if head is None:
        return None
    if isinstance(head, heads.MultiLabel):
        raise ValueError(
            f"compare(): model '{model.name}' has a multi-label head; compare() scores "
            "single-label classification and regression only"
        )
    return "regression" if isinstance(head, heads.Regression) else "classification"


def _model_inputs(name, model, x):
    """The inputs `model` reads from a dict `x`, matched by the model's input names."""
    import keras

    from kfuse.inputs import names as input_naming
    from kfuse.models.fused import FusedModel

    if not isinstance(x, dict):
        return x
    x = raw_tokenized(name, model, x)
    if isinstance(model, FusedModel):
        names = [n for n in model.input_names if n != "presence" or "presence" in x]
    elif isinstance(model, keras.Model):
        names = input_naming.input_names(model)
    elif isinstance(getattr(model, "input_names", None), list):
        names = model.input_names  # a kfuse Stacker
    else:
        return x
    missing = [n for n in names if n not in x]
    if missing:
        close = {m: difflib.get_close_matches(m, list(map(str, x)), n=1) for m in missing}
        hint = "; ".join(f"did you mean {c[0]!r} for {m!r}?" for m, c in close.items() if c)
        raise ValueError(
            f"compare(): model '{name}' reads inputs {names}; the data lacks {missing} "
            f"(received keys {sorted(x)}){'; ' + hint if hint else ''}. Key x by the models' "
            "input names (or pass one array, not a dict, to models with one input each)."
        )
    if isinstance(model, keras.Model) and not isinstance(model, FusedModel) and len(names) == 1:
        return x[names[0]]
    return {n: x[n] for n in names}


def run_model(name, model, x, task, batch_size):
    """Raw outputs and their source for one model (array, Keras model, Stacker, ...)."""
    if is_array(model) or isinstance(model, (list, tuple)):
        return np.asarray(model), "array"
    if not hasattr(model, "predict"):
        raise TypeError(
            f"compare(): model '{name}' is a {type(model).__name__}; pass a Keras model, a "
            "kfuse Stacker (anything with predict / predict_proba) or a prediction array"
        )
    if x is None:
        raise ValueError(f"compare(): model '{name}' needs inputs `x` to predict from")
    inputs = _model_inputs(name, model, x)
    if task != "regression" and hasattr(model, "predict_proba"):
        try:
            return np.asarray(_call(model.predict_proba, inputs, batch_size)), "predict_proba"
        except (ValueError, AttributeError) as error:  # a regressor's predict_proba raises
            if task == "classification":
                raise ValueError(f"compare(): model '{name}' gives no class probabilities "
                                 f"for this classification task: {error}") from None
    out = _call(model.predict, inputs, batch_size)
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise ValueError(f"compare(): model '{name}' has {len(out)} outputs; compare() needs one")
        out = out[0]
    return np.asarray(out), "predict"


def _call(method, inputs, batch_size):
    """Call predict / predict_proba with the batch_size / verbose arguments it accepts.

    `allow_nonfinite=True` goes to kfuse's own methods: `collect` has checked the data.
    """
    import inspect

    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in (("batch_size", batch_size), ("verbose", 0)) if takes_any or k in params}
    owner = getattr(method, "__self__", None)
    if "allow_nonfinite" in params or (takes_any and fused_model(owner) is owner and owner is not None):
        kwargs["allow_nonfinite"] = True
    return method(inputs, **kwargs)
