"""`cost()`: parameters and FLOPs per sample of a fusion operator, before anything is built."""

from kfuse.layers.average import Average
from kfuse.layers.base import FusionLayer
from kfuse.layers.concat import Concat
from kfuse.layers.registry import get_fusion
from kfuse.layers.vote import Vote
from kfuse.layers.weighted import WeightedAverage


def _concat(widths, units=None, normalize=False, **_):
    widths = [int(w) for w in widths]
    out = [units or w for w in widths]
    params = sum((w + 1) * units for w in widths) if units else 0
    flops = sum(2 * w * units + units for w in widths) if units else 0
    if normalize:
        params += 2 * sum(out)
        flops += 8 * sum(out)
    return {"params": params, "flops": flops, "output_width": sum(out)}


def _mean(widths, **_):
    width = int(widths[0])
    return {"params": 0, "flops": len(widths) * width, "output_width": width}


def _weighted(widths, learnable=True, **_):
    width = int(widths[0])
    params = len(widths) if learnable else 0
    return {"params": params, "flops": 2 * len(widths) * width, "output_width": width}


_CORE = {Concat: _concat, Average: _mean, Vote: _mean, WeightedAverage: _weighted}


def _check_widths(branch_widths):
    if not isinstance(branch_widths, (list, tuple)) or not branch_widths:
        raise ValueError(f"cost(): `branch_widths` must be a non-empty list; received {branch_widths!r}")
    for i, w in enumerate(branch_widths):
        values = w if isinstance(w, (list, tuple)) else (w,)
        if not values or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
            raise ValueError(
                f"cost(): branch #{i} width must be a positive int (or (steps, features) for "
                f"sequence branches); received {w!r}"
            )
    return list(branch_widths)


def cost(layer_or_name, branch_widths, **kwargs):
    """Parameters and FLOPs per sample of a fusion operator over branches of given widths.

    Nothing is built and no weight is allocated, so `cost("tensor", [128] * 8)` answers
    at once where building the layer would need petabytes. FLOPs count a multiply-add as
    2 and other element-wise operations as 1 (activations and softmaxes are not counted).

    Args:
        layer_or_name: a registered fusion name (see `kfuse.layers.fusion_names()`), a
            `FusionLayer` class, or an instance (its config is used).
        branch_widths: list of branch output widths; for `CrossAttentionFusion`, a list
            of (steps, features).
        **kwargs: constructor arguments overriding the operator's (e.g. `units=32`).

    Returns:
        dict with "operator", "params", "flops" (per sample) and "output_width".

    Example:

    ```python
    import kfuse

    kfuse.layers.cost("tensor", [128, 128, 128])["output_width"]  # 2,146,689 features
    kfuse.layers.cost("tensor", [128, 128, 128], units=64)["params"]  # 137,388,160
    kfuse.layers.cost("low_rank", [128, 128, 128], units=64, rank=4)["params"]  # 99,140
    ```
    """
    widths = _check_widths(branch_widths)
    if isinstance(layer_or_name, type):
        if not issubclass(layer_or_name, FusionLayer):
            raise TypeError(f"cost(): {layer_or_name.__name__} is not a kfuse FusionLayer")
        cls, config = layer_or_name, dict(kwargs)
    else:
        layer = get_fusion(layer_or_name)
        cls, config = type(layer), {**layer.get_config(), **kwargs}
        if cls.__name__ == "ModalityDropout":
            inner = cost(layer.fusion, widths, **kwargs)
            inner["flops"] += 2 * len(widths) * max(int(_last(w)) for w in widths)
            return {**inner, "operator": f"ModalityDropout({inner['operator']})"}
    formula = getattr(cls, "cost_formula", None) or _CORE.get(cls)
    if formula is None:
        raise TypeError(f"cost(): no cost formula for {cls.__name__}")
    if cls.__name__ != "CrossAttentionFusion":
        widths = [_last(w) for w in widths]
    result = formula(widths, **{k: v for k, v in config.items() if k != "name"})
    return {"operator": cls.__name__, **result}


def _last(width):
    return width[-1] if isinstance(width, (list, tuple)) else width
