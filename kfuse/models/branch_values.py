"""A `FusedModel`'s branch outputs read in one pass, and its top trained on them.

- `branch_outputs`: every branch's output (or some branches') on `x`, through one probe
  model per set of branch names, kept for the model's life so its traced forward pass
  (`kfuse.trainers.predict_loop`) serves every later call (a hub backbone traces ~1 s);
- `check_branch_values`: a branch whose outputs hold NaN / inf is refused by name and rows;
- `diagnose_nonfinite_loss`: after a fit whose loss went NaN / inf, the frozen branch
  whose outputs are NaN on the training rows is named;
- `fit_head`: `model.top` trained on the cached outputs of frozen branches
  (`FusedModel.fit_head` calls it).

Example:

```python
import keras, numpy as np, kfuse
from kfuse.models.branch_values import branch_outputs

base = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2)])
model = kfuse.stack([kfuse.Branch(base, name="b", trainable=False, output="logits")], head=2)
branch_outputs(model, np.zeros((4, 3), "float32"))["b"].shape  # (4, 2)
```
"""

import weakref

import keras
import numpy as np

from kfuse.branches.raw_inputs import tokenized
from kfuse.inputs.checks import SHOW_ROWS, check_integral, nonfinite_rows
from kfuse.inputs.values import is_dataset
from kfuse.inputs.xy import arrays_and_labels
from kfuse.trainers.epoch_loop import compile_top, fit_top
from kfuse.trainers.predict_loop import predict_in_memory
from kfuse.trainers.predict_loop import supports as predicts_in_memory
from kfuse.utils.tf_data import read_dataset

#: model -> {branch names: the probe model of `branch_outputs`}, so its traced forward
#: pass (`kfuse.trainers.predict_loop`) is reused by every later call (a hub backbone traces ~1 s)
_PROBES = weakref.WeakKeyDictionary()


def branch_outputs(model, x, batch_size=256, verbose=0, names=None, check_finite=True):
    """Every branch's output of `model` on `x`, as a dict of branch name -> array (one
    pass); a branch with a NaN / inf output is refused by name and rows
    (`check_finite=False`: returned as they are)."""
    names = model.branch_names if names is None else list(names)
    probes = _PROBES.setdefault(model, {})
    probe = probes.get(tuple(names))
    if probe is None:
        probe = keras.Model(model.input, [model.branch_tensor(n) for n in names])
        probes[tuple(names)] = probe
    x = model.as_inputs(x)
    if getattr(model, "kfuse_strategy", None) is None and predicts_in_memory(probe, x, {}):
        values = predict_in_memory(probe, x, batch_size=batch_size, verbose=verbose)
    else:
        values = probe.predict(x, batch_size=batch_size, verbose=verbose)
    values = [values] if len(names) == 1 else values
    values = {n: np.asarray(v) for n, v in zip(names, values, strict=True)}
    if check_finite:
        check_branch_values(values, f"Model '{model.name}'")
    return values


def check_branch_values(values, where):
    """Raise a ValueError naming the branch and rows whose outputs are NaN / inf."""
    for name, value in values.items():
        bad = nonfinite_rows(value)
        if bad.size:
            shown = bad[: SHOW_ROWS].tolist()
            raise ValueError(
                f"{where}: branch '{name}' outputs NaN or infinite values on rows {shown}"
                f" ({bad.size} of {len(value)}) of finite inputs; the fused outputs would "
                "be NaN. Check that branch's weights and what it computes on those rows."
            )


def diagnose_nonfinite_loss(model, history, x, where):
    """After a fit whose loss went NaN / inf: name a frozen branch whose outputs are
    NaN on the training rows (a trainable branch that diverged is the optimizer's)."""
    losses = (getattr(history, "history", None) or {}).get("loss", [])
    frozen = [n for n in model.branch_names if not model.branch(n).trainable]
    if frozen and any(not np.isfinite(v) for v in losses):
        values = model.branch_outputs(x, names=frozen, check_finite=False)
        check_branch_values(values, f"{where} (the loss went NaN)")


def fit_head(
    model, x, y=None, epochs=1, batch_size=None, validation_data=None, cache_batch_size=1024,
    allow_nonfinite=False, **kwargs,
):  # fmt: skip
    """Train `model.top` on the frozen branches' cached outputs; returns the `History`
    (what `FusedModel.fit_head` documents)."""
    trainable = [n for n in model.branch_names if model.branch(n).trainable]
    if trainable:
        raise ValueError(
            f"fit_head trains on cached branch outputs, so every branch must be frozen; "
            f"branches {trainable} are trainable. Use fit(), or Branch(..., trainable=False)."
        )
    if model.optimizer is None or not model.compiled:
        raise ValueError(f"Model '{model.name}' is not compiled; compile it (or stack(compile=True)) first")
    where = f"Model '{model.name}'.fit_head"
    data, y, weights = _head_data(model, x, y, where, allow_nonfinite, cache_batch_size)
    if weights is not None:
        kwargs["sample_weight"] = weights
    if validation_data is not None:
        if is_dataset(validation_data):
            vx, vy = validation_data, None
        else:
            vx, vy = validation_data[0], validation_data[1]
        vdata, vy, _ = _head_data(model, vx, vy, where + " validation_data", allow_nonfinite, cache_batch_size)
        validation_data = (vdata, vy)
    with model.strategy_scope():
        top = compile_top(model.top, model, metrics=model.head.metrics() if model.head else None)
    return fit_top(
        top, data, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data, **kwargs
    )


def _head_data(model, data, labels, where, allow_nonfinite, cache_batch_size):
    """(what `model.top` reads, labels, sample weights) of one data set of `fit_head`:
    inputs checked, the branches' outputs computed once."""
    weights, data = None, tokenized(model, data, where)  # hub Tasks' raw strings
    if is_dataset(data):
        if labels is not None:
            raise ValueError(f"{where}: pass y inside the tf.data.Dataset, not as y=")
        data, labels, weights = read_dataset(data, where)
    if model.kfuse_info.get("presence_input"):
        data = model._with_presence(data, model.input_names)
    arrays, labels, weights = arrays_and_labels(
        data, labels, model.input_names, where, allow_nonfinite, weights, model.name
    )
    check_integral(arrays, model.input_dtypes, where)
    model._check_labels(labels)
    values = model.branch_outputs(arrays, batch_size=cache_batch_size, check_finite=not allow_nonfinite)
    return model.top_data(values, arrays), labels, weights
