"""How far each branch of a fused model is from its base's own predictions: the self-check
`kfuse.compare` runs when it is given both (a branch copies its base exactly)."""

import keras
import numpy as np

from kfuse.branches.outputs import final_activation, final_layer


def branch_base_differences(model, bases, x, batch_size=256):
    """How far each branch of `model` (a `kfuse.FusedModel`) is from its base's own
    predictions on the same rows: {branch name: largest absolute difference}.

    A cheap self-check for `compare` when both the fused model and its bases are given:
    a branch copies its base exactly, so anything above float noise (1e-4) means the
    copy lost state. Only branches that hand over the base's output as it is (output
    "raw", or "probabilities" from a base ending in softmax/sigmoid, no tap) are
    compared; `bases` maps branch name -> the base model (others are ignored).

    Example:

    ```python
    import keras, numpy as np, kfuse
    from kfuse.branches.differences import branch_base_differences

    base = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    model = kfuse.stack([kfuse.Branch(base, name="b")], head=2)
    x = np.ones((3, 4), "float32")
    assert branch_base_differences(model, {"b": base}, {"x": x})["b"] < 1e-5
    ```
    """
    infos = {b["name"]: b for b in model.kfuse_info.get("branches", [])}
    names = [n for n in bases if n in infos and _comparable(infos[n], bases[n])]
    if not names:
        return {}
    outputs = model.branch_outputs(x, batch_size=batch_size)
    data = model.as_inputs(x)
    found = {}
    for name in names:
        keys = infos[name]["inputs"]
        feed = data[keys[0]] if len(keys) == 1 else [data[k] for k in keys]
        own = np.asarray(bases[name].predict(feed, batch_size=batch_size, verbose=0), "float64")
        mine = np.asarray(outputs[name], "float64")
        found[name] = float(np.max(np.abs(mine - own))) if mine.shape == own.shape else float("inf")
    return found


def _comparable(info, base):
    if not isinstance(base, keras.Model) or info.get("output_kind") not in ("raw", "probabilities"):
        return False
    if info["output_kind"] == "raw":
        return len(base.outputs) == 1
    layer = final_layer(base)
    return layer is not None and final_activation(layer)[0] in ("softmax", "sigmoid")
