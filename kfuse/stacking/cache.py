"""Cached branch outputs: the ONE route by which kfuse trains the top of a stack fast.

A frozen branch does not change while the layers above it train, so running it every
epoch (as `Model.fit` on the whole graph does) repeats the same work. Here each frozen
branch runs once over all rows (a batched predict); the fusion, meta-learner and head
then train on the cached arrays: that is `model.top` (the fused model's own sub-model
above the branches, trained directly), with `fit_top`, which runs each epoch as one
traced call (`kfuse.trainers.epoch_loop`). Three users, one route:

- `FusedModel.fit_head`: a stack whose branches are all frozen;
- `kfuse.Stacker`: frozen branches beside out-of-fold predictions of trained ones;
- `kfuse.tuning.FusionHyperModel`: every trial of a search over frozen branches, with
  `BranchCache` keeping the outputs per data set across trials.
"""

from kfuse.stacking.base_training import feature_model, predict
from kfuse.trainers.epoch_loop import compile_top, fit_top  # noqa: F401  (the one route, re-exported)
from kfuse.utils.fingerprints import data_digest

CACHE_BATCH = 1024


def cached_features(branches, methods, arrays, input_shapes, batch_size=CACHE_BATCH):
    """{branch name: features of every row} for the given (frozen, built) branches."""
    cache = {}
    for branch in branches:
        model = feature_model(branch, branch.base, methods[branch.name], input_shapes)
        cache[branch.name] = predict(model, branch.input_names, arrays, batch_size=batch_size)
    return cache


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
    from kfuse.stacking.cache import BranchCache

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


def through_graph(model, names):
    """`model.top` with the branches `names` run in the graph (not cached), as one model.

    Inputs: the cached outputs of the other branches, then the raw inputs that the
    branches `names` and the top read. Training it trains `model.top`'s layers.
    """
    import keras

    specs = {b["name"]: b["inputs"] for b in model.kfuse_info["branches"]}
    raw = {}
    for n in names:
        raw.update({k: None for k in specs[n]})
    raw.update({k: None for k in model.top_raw_inputs})
    tensors = {k: keras.Input(shape=model.input[k].shape[1:], dtype=model.input[k].dtype, name=k) for k in raw}
    cached = {
        t.name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name)
        for t in model.top.inputs
        if t.name in specs and t.name not in names
    }
    feed = {**cached, **{n: model.branch_tensor(n, tensors) for n in names}}
    feed.update({k: tensors[k] for k in model.top_raw_inputs})
    return keras.Model({**cached, **tensors}, model.top(feed), name=f"{model.name}_through_graph")
