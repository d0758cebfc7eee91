"""What each branch of a kfuse model brings: learned fusion weights and ablation.

- Weights: when the fusion layer has `branch_weights()` (e.g. `WeightedAverage`) its
  normalised weights are read; a layer with data-dependent gates (`GatedFusion`'s
  `return_gates`, `AttentionFusion`'s `return_weights`) is run on the branch outputs and
  its gates are averaged over the rows (and features).
- Leave-one-branch-out ablation: the branch outputs are computed once, then the rest of
  the graph (fusion, meta-learner, head) is re-run with one branch masked. A fusion layer
  that supports a presence mask (Average, WeightedAverage, ...) is told the branch is
  absent; otherwise the branch's output is replaced by zeros. The table reports the
  score without each branch and the drop from the full model's score.
"""

import numpy as np
from sklearn.metrics import accuracy_score, mean_absolute_error

from kfuse.evaluation.predictions import to_probabilities
from kfuse.evaluation.running import fused_model, raw_tokenized


class Contributions:
    """Per-branch weights and ablation scores of one kfuse model.

    Attributes:
        model_name: name of the model in the comparison.
        weights: dict branch -> weight (None when the fusion layer learns none).
        weights_kind: "fusion weight" (learned constants) or "mean gate" (data-dependent).
        ablation: pandas DataFrame indexed by branch: `metric without branch`, `drop`.
        metric: the metric the ablation uses; `full_score`: the unmasked model's score.
        method: "presence mask" or "zeroed output".

    Example:

    ```python
    import keras, numpy as np, kfuse

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    fused = kfuse.stack([kfuse.Branch(base, name="a", inputs="x"),
                         kfuse.Branch(base, name="b", inputs="x")],
                        fusion="weighted_average", head=2)
    c = kfuse.compare({"fused": fused}, x, y).contributions["fused"]
    c.table()  # fusion weight, accuracy without branch, accuracy drop
    ```
    """

    def __init__(self, model_name, weights, ablation, metric, full_score, method, weights_kind=None):
        self.model_name = model_name
        self.weights = weights
        self.ablation = ablation
        self.metric = metric
        self.full_score = full_score
        self.method = method
        self.weights_kind = weights_kind or "fusion weight"

    def table(self):
        """One DataFrame: weight (if any), score without the branch, and the drop."""
        table = self.ablation.copy()
        if self.weights:
            table.insert(0, self.weights_kind, [self.weights.get(b, np.nan) for b in table.index])
        return table


def branch_weights(fusion, outputs, batch_size=512):
    """(dict branch -> mean weight, kind) or (None, None) when the fusion layer has none.

    `kind` is "fusion weight" (learned constants, `branch_weights()`) or "mean gate"
    (data-dependent gates or attention weights, averaged over the rows and features).
    """
    names = fusion.branch_names or [f"branch_{i}" for i in range(len(outputs))]
    flag = next((f for f in ("return_gates", "return_weights") if hasattr(fusion, f)), None)
    if flag is not None:
        return dict(zip(names, _mean_gates(fusion, flag, outputs, batch_size).tolist(), strict=False)), "mean gate"
    method = getattr(fusion, "branch_weights", None)
    if method is None:
        return None, None
    values = method()
    if isinstance(values, dict):
        return {k: float(np.mean(v)) for k, v in values.items()}, "fusion weight"
    return dict(zip(names, np.asarray(values, dtype=float).tolist(), strict=False)), "fusion weight"


def _mean_gates(fusion, flag, outputs, batch_size):
    """Mean over rows (and features) of the gates a fusion layer computes on `outputs`."""
    import keras

    saved = getattr(fusion, flag)
    setattr(fusion, flag, True)
    try:
        total, count = 0.0, 0
        for start in range(0, len(outputs[0]), batch_size):
            batch = [keras.ops.convert_to_tensor(o[start:start + batch_size]) for o in outputs]
            gates = keras.ops.convert_to_numpy(fusion.fuse(batch, None)[1])
            gates = gates.reshape(gates.shape[0], gates.shape[1], -1).mean(axis=2)
            total = total + gates.sum(axis=0)
            count += gates.shape[0]
    finally:
        setattr(fusion, flag, saved)
    return total / count


def run_rest(model, x, branch_values, presence=None, batch_size=512):
    """The model's output from precomputed branch outputs: `model.top` on them, batched.

    Args:
        model: a kfuse FusedModel.
        x: its inputs (used only for the raw inputs the top reads, e.g. passthrough).
        branch_values: dict branch name -> array, replacing each branch's output.
        presence: optional (M,) 0/1 vector handed to the fusion layer as its mask.
    """
    data = model.top_data(branch_values, x if model.top_raw_inputs else None)
    top = model.top
    if presence is not None:
        rows = len(next(iter(branch_values.values())))
        mask = np.tile(np.asarray(presence, "float32"), (rows, 1))
        if "presence" in model.top_raw_inputs:
            data["presence"] = mask * data["presence"]
        else:
            top = masked_top(model, np.asarray(presence, "float32"))
    return np.asarray(top.predict(data, batch_size=batch_size, verbose=0))


def masked_top(model, presence):
    """`model.top` (its own layers) with the fusion layer told which branches are present."""
    import keras

    fusion = model.fusion_layer
    constant = keras.ops.convert_to_tensor(presence[None, :])

    def call(layer, *args, **kwargs):
        if layer is not fusion:
            return layer(*args, **kwargs)
        first = args[0][0]
        ones = keras.ops.ones_like(keras.ops.sum(first, axis=tuple(range(1, len(first.shape))), keepdims=False))
        mask = keras.ops.expand_dims(ones, -1) * keras.ops.cast(constant, ones.dtype)
        return layer(*args, **{**kwargs, "presence": mask})

    return keras.models.clone_model(model.top, clone_function=lambda layer: layer, call_function=call)


def _score(task, y, raw, head):
    if task == "classification":
        if head is not None and head.activation is not None:
            raw = head.probabilities(raw)
        proba, _ = to_probabilities("ablation", raw)
        return float(accuracy_score(y, proba.argmax(axis=1)))
    if y.ndim == 1 and raw.ndim == 2:
        raw = raw[:, 0]
    return float(mean_absolute_error(y, raw))


def contributions(name, obj, x, y, task, batch_size=512):
    """A `Contributions` for a kfuse model (FusedModel or fitted Stacker), else None."""
    import pandas as pd

    model = fused_model(obj)
    if model is None or x is None or not model.branch_names:
        return None
    branches = model.branch_names
    x = raw_tokenized(name, obj, x)  # a Stacker's fold model may not hold the preprocessor
    values = model.branch_outputs(x, batch_size=batch_size)
    fusion = model.fusion_layer
    weights, kind = (
        branch_weights(fusion, [values[b] for b in branches], batch_size) if fusion is not None else (None, None)
    )
    head = model.head
    metric = "accuracy" if task == "classification" else "mae"
    full = _score(task, y, run_rest(model, x, values, batch_size=batch_size), head)
    masked = getattr(fusion, "supports_presence", False)
    rows = {}
    for i, branch in enumerate(branches):
        if len(branches) == 1:
            replaced = {branch: np.zeros_like(values[branch])}
            raw = run_rest(model, x, replaced, batch_size=batch_size)
        elif masked:
            presence = np.ones(len(branches), "float32")
            presence[i] = 0.0
            raw = run_rest(model, x, values, presence=presence, batch_size=batch_size)
        else:
            replaced = {**values, branch: np.zeros_like(values[branch])}
            raw = run_rest(model, x, replaced, batch_size=batch_size)
        score = _score(task, y, raw, head)
        drop = full - score if metric == "accuracy" else score - full
        rows[branch] = {f"{metric} without branch": score, f"{metric} drop": drop}
    ablation = pd.DataFrame.from_dict(rows, orient="index")
    ablation.index.name = "branch"
    method = "presence mask" if masked and len(branches) > 1 else "zeroed output"
    return Contributions(name, weights, ablation, metric, full, method, kind)
