"""Cached branch outputs: the ONE route by which kfuse trains the top of a stack fast.

A frozen branch does not change while the layers above it train, so running it every
epoch (as `Model.fit` on the whole graph does) repeats the same work. Here each frozen
branch runs once over all rows (a batched predict); the fusion, meta-learner and head
then train on the cached arrays as a "top" model that shares its layers with the full
graph (`top_model`), with `fit_top`, which runs each epoch as one traced call
(`kfuse.training.epoch_loop`). Three users, one route:

- `FusedModel.fit_head`: a stack whose branches are all frozen;
- `kfuse.Stacker`: frozen branches beside out-of-fold predictions of trained ones;
- `kfuse.tuning.FusionHyperModel`: every trial of a search over frozen branches, with
  `BranchCache` keeping the outputs per data set across trials.
"""

import keras
import numpy as np

from kfuse.training.base_training import feature_model, predict
from kfuse.training.epoch_loop import fit_in_memory, supports
from kfuse.training.inputs import data_digest

CACHE_BATCH = 1024
#: `Model.fit` on the top, where the in-memory loop does not apply: steps per traced call
STEPS_PER_EXECUTION = 32


def cached_features(branches, methods, arrays, input_shapes, batch_size=CACHE_BATCH):
    """{branch name: features of every row} for the given (frozen, built) branches."""
    cache = {}
    for branch in branches:
        model = feature_model(branch, branch.base, methods[branch.name], input_shapes)
        cache[branch.name] = predict(model, branch.input_names, arrays, batch_size=batch_size)
    return cache


def graph_features(model, names, arrays, batch_size=CACHE_BATCH):
    """{branch name: output} of the branches `names` of `model`, in one batched pass."""
    probe = keras.Model(model.inputs, [model.branch_tensor(n) for n in names])
    values = probe.predict(model.as_inputs(arrays), batch_size=batch_size, verbose=0)
    values = [values] if len(names) == 1 else values
    return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}


class BranchCache:
    """Outputs of frozen, pre-trained branches, computed once per data set.

    `features(arrays)` runs every branch once over the named arrays and keeps the result
    under a content hash of the arrays, so a second call with the same data (the next
    trial of a search, the next fit) costs only the hash.

    Args:
        branches: `kfuse.Branch` objects over trained bases (fresh callables are skipped:
            they have no weights to cache outputs of).
        input_shapes: input name -> shape without the batch axis.

    Example:

    ```python
    import keras, numpy as np, kfuse
    from kfuse.training.cache import BranchCache

    base = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(3)])
    cache = BranchCache([kfuse.Branch(base, name="a", trainable=False)], {"x": (8,)})
    cache.features({"x": np.ones((4, 8), "float32")})["a"].shape  # (4, 3)
    ```
    """

    def __init__(self, branches, input_shapes):
        self.branches = {b.name: b for b in branches if not b.is_fresh}
        self.input_shapes = dict(input_shapes)
        self._store = {}
        self.passes = 0  # how many times branch outputs were computed (one per data set)

    def features(self, arrays):
        key = data_digest(arrays)
        if key not in self._store:
            branches = list(self.branches.values())
            methods = {b.name: branch_method(b) for b in branches}
            self._store[key] = cached_features(branches, methods, arrays, self.input_shapes)
            self.passes += 1
        return self._store[key]

    def usable(self, model):
        """Whether `model` can train on this cache: every branch frozen and cached here."""
        names = model.branch_names
        if not names or any(n not in self.branches for n in names):
            return False
        return all(not model.get_layer(n).trainable_weights for n in names)


#: Branch(output=...) -> the Stacker's stack_method that hands over the same tensor
OUTPUT_METHOD = {"probabilities": "predict_proba", "logits": "logits", "raw": "raw"}


def branch_method(branch):
    return "features" if branch.tap is not None else OUTPUT_METHOD[branch.output]


def top_raw_inputs(model):
    """The input names the top of `model` reads besides branch outputs."""
    info = model.kfuse_info
    return model.input_names if info.get("passthrough") or info.get("presence_input") else []


def top_model(model, branch_names=None, raw_names=None):
    """The part of `model` above its branches, as a model sharing its layers.

    Inputs: the outputs of `branch_names` (default: every branch), then the raw inputs
    `raw_names` (default: those passthrough or a presence input feed to the top).
    Training it trains `model`'s fusion, meta-learner and head.
    """
    branch_names = model.branch_names if branch_names is None else branch_names
    raw_names = top_raw_inputs(model) if raw_names is None else raw_names
    by_name = {t.name: t for t in model.inputs}
    tensors = [model.branch_tensor(n) for n in branch_names] + [by_name[k] for k in raw_names]
    # Keras cuts a graph at inner tensors by cloning its nodes onto the same layers
    # (`functional.clone_graph_nodes`), and an input of `model` passed through as it is
    # gets a second InputLayer node that rewrites the input tensor's history; `model`
    # then no longer saves ("could not find node key"). The top holds its own nodes, so
    # the layers' node lists and the inputs' histories are put back as they were.
    layers = [(layer, list(layer._inbound_nodes), list(layer._outbound_nodes)) for layer in model.layers]
    histories = [(t, t._keras_history) for t in model.inputs]
    top = keras.Model(tensors, model.outputs, name=f"{model.name}_top")
    for layer, inbound, outbound in layers:
        layer._inbound_nodes[:] = inbound
        layer._outbound_nodes[:] = outbound
    for tensor, history in histories:
        tensor._keras_history = history
    return top


def top_data(features, branch_names, arrays, raw_names, rows=None):
    """The arrays `top_model(model, branch_names, raw_names)` reads, for `rows`."""
    pick = (lambda a: np.asarray(a)) if rows is None else (lambda a: np.asarray(a)[rows])
    return [pick(features[n]) for n in branch_names] + [pick(arrays[k]) for k in raw_names]


def fit_top(top, x, y, seed=None, **fit_kwargs):
    """Train the compiled `top` on in-memory arrays; returns the Keras `History`.

    One traced call per epoch where it applies (`epoch_loop.supports`); otherwise
    `top.fit`. `seed` fixes the shuffling order of the in-memory loop.
    """
    if supports(top, x, y, fit_kwargs):
        return fit_in_memory(top, x, y, seed=seed, **fit_kwargs)
    return top.fit(x, y, **fit_kwargs)


def compile_top(top, model, metrics=None, **compile_kwargs):
    """Compile `top` with `model`'s optimizer and loss (and `metrics`, fresh objects)."""
    top.compile(
        optimizer=model.optimizer,
        loss=model.loss,
        metrics=metrics,
        steps_per_execution=STEPS_PER_EXECUTION,
        **compile_kwargs,
    )
    return top
