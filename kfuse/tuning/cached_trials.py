"""Fast trials: train only the top of a stack on cached outputs of its frozen branches.

A frozen branch gives the same outputs in every trial, so running it every epoch of every
trial repeats the same work. `BranchCache` computes each frozen branch's outputs once per
data set (with `kfuse.training.cache.cached_features`, the Stacker's cache); a trial
whose included branches are all frozen then trains a "top" model that starts at the
branch outputs. The top model shares its layers (fusion, meta-learner, head) with the
full graph, so the trained head is already in place in the full stack when it returns.
"""

import hashlib

import keras
import numpy as np

from kfuse.training.cache import cached_features, top_inputs

#: training steps per call of the compiled train function: the top model is small, so
#: Python dispatch, not arithmetic, bounds its step time. Same batches and updates as one
#: step per call; batch-level callbacks see every 32nd batch.
STEPS_PER_EXECUTION = 32

#: Branch(output=...) -> the Stacker's stack_method that hands over the same tensor
OUTPUT_METHOD = {"probabilities": "predict_proba", "logits": "logits", "raw": "raw"}


def branch_method(branch):
    return "features" if branch.tap is not None else OUTPUT_METHOD[branch.output]


def as_arrays(x, input_names):
    """{input name: numpy array} for arrays or dicts of arrays; None for anything else."""
    if isinstance(x, dict):
        if not all(k in x and isinstance(x[k], np.ndarray) for k in input_names):
            return None
        return {k: x[k] for k in input_names}
    if isinstance(x, np.ndarray) and len(input_names) == 1:
        return {input_names[0]: x}
    return None


def digest(arrays):
    """A content hash of named arrays (cheap next to one forward pass over them)."""
    h = hashlib.sha1()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"{key}{value.shape}{value.dtype}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


class BranchCache:
    """Outputs of frozen, pre-trained branches, computed once per data set.

    Args:
        branches: the `kfuse.Branch` objects whose outputs may be cached (bases with
            weights; fresh branches are never cached).
        input_shapes: input name -> shape, as `kfuse.graph.resolve_input_specs` gives.
    """

    def __init__(self, branches, input_shapes):
        self.branches = {b.name: b for b in branches if not b.is_fresh}
        self.input_shapes = dict(input_shapes)
        self._store = {}
        self.passes = 0  # how many times branch outputs were computed (one per data set)

    def features(self, arrays):
        key = digest(arrays)
        if key not in self._store:
            branches = list(self.branches.values())
            methods = {b.name: branch_method(b) for b in branches}
            self._store[key] = cached_features(branches, methods, arrays, self.input_shapes)
            self.passes += 1
        return self._store[key]

    def usable(self, model):
        """Whether `model`'s trials can train on cached outputs: every branch frozen and cached."""
        names = model.branch_names
        if not names or any(n not in self.branches for n in names):
            return False
        return all(not model.get_layer(n).trainable_weights for n in names)


class _Redirect(keras.callbacks.Callback):
    """Runs a callback against the full model while the top model trains.

    KerasTuner's checkpoint callback saves `self.model`'s weights; redirected, it saves the
    full stack, so `tuner.get_best_models()` reloads them into an ordinary kfuse stack.
    """

    def __init__(self, inner, full):
        super().__init__()
        self.inner = inner
        self.full = full

    def set_model(self, model):
        self._top = model
        self.inner.set_model(self.full)

    def set_params(self, params):
        self.inner.set_params(params)

    def _forward(self, hook, *args, **kwargs):
        getattr(self.inner, hook)(*args, **kwargs)
        if getattr(self.full, "stop_training", False):
            self._top.stop_training = True


for _hook in (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
    "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
    "on_predict_batch_begin", "on_predict_batch_end",
):  # fmt: skip
    setattr(_Redirect, _hook, lambda self, *a, _h=_hook, **k: self._forward(_h, *a, **k))


def top_model(model):
    """The part of `model` above its branches: inputs are the branch outputs (+ raw inputs)."""
    raw = model.input_names if model.kfuse_info.get("passthrough") else []
    top = keras.Model(top_inputs(model, model.branch_names, raw), model.outputs, name=model.name + "_top")
    return top, raw


def top_arrays(model, cache, arrays, raw):
    features = cache.features(arrays)
    return [features[n] for n in model.branch_names] + [arrays[k] for k in raw]


def fit_cached(model, cache, metrics, x, y=None, **kwargs):
    """Fit `model`'s top on cached branch outputs; the full `model` holds the result.

    `metrics` are fresh metric objects equal to those `model` was compiled with.

    Returns the `History`, or None when `x` (or `validation_data`) is not array data.
    """
    arrays = as_arrays(x, model.input_names)
    if arrays is None:
        return None
    validation = kwargs.get("validation_data")
    if validation is not None:
        if not isinstance(validation, tuple) or len(validation) < 2:
            return None
        val_arrays = as_arrays(validation[0], model.input_names)
        if val_arrays is None:
            return None
    top, raw = top_model(model)
    if validation is not None:
        kwargs["validation_data"] = (top_arrays(model, cache, val_arrays, raw), *validation[1:])
    top.compile(
        optimizer=model.optimizer,
        loss=model.loss,
        metrics=metrics,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    model.stop_training = False
    kwargs["callbacks"] = [_Redirect(c, model) for c in kwargs.get("callbacks") or []]
    model._check_labels(y)
    return top.fit(top_arrays(model, cache, arrays, raw), y, **kwargs)

