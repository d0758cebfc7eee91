"""Fast trials: train only the top of a stack on cached outputs of its frozen branches.

A frozen branch gives the same outputs in every trial, so running it every epoch of every
trial repeats the same work. `BranchCache` computes each frozen branch's outputs once per
data set (with `kfuse.stacking.cache.cached_features`, the Stacker's cache); a trial
whose included branches are all frozen then trains `model.top` (the stack's own fusion,
meta-learner and head, one sub-model) on those outputs, so the trained head is already
in place in the full stack when it returns.
"""

import os

import keras
import numpy as np

from kfuse.inputs.checks import check_finite, check_rows
from kfuse.inputs.names import named
from kfuse.inputs.values import is_dataset
from kfuse.stacking.cache import BranchCache, compile_top, fit_top

__all__ = ["BranchCache", "fit_cached"]


def in_memory(x, model):
    """{input name: numpy array} when `x` is numpy data for `model`, else None."""
    if is_dataset(x) or x is None:
        return None
    try:
        arrays = named(x, model.input_names, model_name=model.name)
    except (TypeError, ValueError):
        return None
    if not all(isinstance(v, np.ndarray) for v in arrays.values()):
        return None
    check_rows(arrays, where=f"Model '{model.name}'.fit")
    check_finite(arrays, where=f"Model '{model.name}'.fit")
    return arrays


class _DeferredSaves:
    """The full model as callbacks see it, with `save_weights` deferred to the end.

    KerasTuner saves the weights at every better epoch. Saving the full stack writes the
    bases' weights too, which costs more than a whole cached epoch; the view keeps an
    in-memory copy of the weights of `part` (the one sub-model that trains: `model.top`;
    the rest is frozen) per file instead, and `flush` writes each file once, with the
    weights its last save asked for; where `part` is the top, the file holds the top
    alone (about a third of the time of writing the whole stack).
    When those are the weights the model holds already (the best epoch was the last),
    nothing is swapped in and out.
    """

    def __init__(self, full, part=None):
        object.__setattr__(self, "_full", full)
        object.__setattr__(self, "_part", full if part is None else part)
        object.__setattr__(self, "_pending", {})

    def save_weights(self, filepath, overwrite=True, **kwargs):
        self._pending[os.fspath(filepath)] = (self._part.get_weights(), overwrite, kwargs)

    def flush(self):
        if not self._pending:
            return
        current = self._part.get_weights()
        swapped = False
        try:
            for path, (weights, overwrite, kwargs) in self._pending.items():
                if swapped or not _same(weights, current):
                    self._part.set_weights(weights)
                    swapped = True
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                self._save(path, overwrite, kwargs)
        finally:
            if swapped:
                self._part.set_weights(current)
            self._pending.clear()

    def _save(self, path, overwrite, kwargs):
        # the top alone when only it trained and the path is a weights file: the frozen,
        # shared branches are the same in every trial (FusedModel.load_weights reads it)
        top = getattr(self._full, "top", None) if hasattr(self._full, "save_top_weights") else None
        if self._part is top and not kwargs and path.endswith(".weights.h5"):
            self._full.save_top_weights(path, overwrite=overwrite)
        else:
            self._full.save_weights(path, overwrite=overwrite, **kwargs)

    def __getattr__(self, name):
        return getattr(self._full, name)

    def __setattr__(self, name, value):
        setattr(self._full, name, value)


def _same(weights, others):
    return len(weights) == len(others) and all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(weights, others, strict=True)
    )


class _Redirect(keras.callbacks.Callback):
    """Runs a callback against the full model while the top model trains.

    KerasTuner's checkpoint callback saves `self.model`'s weights; redirected, it saves the
    stack's top (at the end of training, see `_DeferredSaves`; `FusedModel.save_top_weights`:
    the frozen branches are shared by every trial), and `tuner.get_best_models()` loads
    that into an ordinary kfuse stack of the trial's design (`FusedModel.load_weights`).
    """

    def __init__(self, inner, full, part=None):
        super().__init__()
        self.inner = inner
        self.full = full
        self.view = _DeferredSaves(full, part)

    @property
    def kfuse_wrapped_callback(self):
        """What this forwards to: the epoch loop judges its batch hooks, not the forwarding ones."""
        return self.inner

    def set_model(self, model):
        self._top = model
        self.inner.set_model(self.view)

    def set_params(self, params):
        self.inner.set_params(params)

    def _forward(self, hook, *args, **kwargs):
        getattr(self.inner, hook)(*args, **kwargs)
        if hook == "on_train_end":
            self.view.flush()
        if getattr(self.full, "stop_training", False):
            self._top.stop_training = True


for _hook in (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
    "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
    "on_predict_batch_begin", "on_predict_batch_end",
):  # fmt: skip
    setattr(_Redirect, _hook, lambda self, *a, _h=_hook, **k: self._forward(_h, *a, **k))


def fit_cached(model, cache, metrics, x, y=None, **kwargs):
    """Fit `model`'s top on cached branch outputs; the full `model` holds the result.

    `metrics` are fresh metric objects equal to those `model` was compiled with.

    Returns the `History`, or None when `x` (or `validation_data`) is not array data.
    """
    arrays = in_memory(x, model)
    if arrays is None:
        return None
    validation = kwargs.get("validation_data")
    if validation is not None:
        if not isinstance(validation, tuple) or len(validation) < 2:
            return None
        val_arrays = in_memory(validation[0], model)
        if val_arrays is None:
            return None
    with model.strategy_scope():
        top = compile_top(model.top, model, metrics=metrics)
    if validation is not None:
        kwargs["validation_data"] = (model.top_data(cache.features(val_arrays), val_arrays), *validation[1:])
    model.stop_training = False
    kwargs["callbacks"] = [_Redirect(c, model, top) for c in kwargs.get("callbacks") or []]
    model._check_labels(y)
    return fit_top(top, model.top_data(cache.features(arrays), arrays), y, **kwargs)
