"""Fusion operators by name, so `stack(fusion="concat")` and configs can name them."""

from kfuse.layers.average import Average
from kfuse.layers.base import FusionLayer
from kfuse.layers.concat import Concat
from kfuse.layers.vote import Vote
from kfuse.layers.weighted import WeightedAverage

_FUSIONS = {
    "concat": lambda: Concat(),
    "average": lambda: Average(),
    "weighted_average": lambda: WeightedAverage(),
    "soft_vote": lambda: Vote("soft"),
    "hard_vote": lambda: Vote("hard"),
}


def register_fusion(name, factory):
    """Make `stack(fusion=name)` build `factory()` (a zero-argument callable)."""
    _FUSIONS[name] = factory


def fusion_names():
    """The names `stack(fusion=...)` accepts, sorted."""
    return sorted(_FUSIONS)


def get_fusion(fusion):
    """Resolve a fusion name or layer to a fresh `FusionLayer`."""
    if isinstance(fusion, FusionLayer):
        return fusion
    if isinstance(fusion, str):
        if fusion not in _FUSIONS:
            import difflib

            close = difflib.get_close_matches(fusion, fusion_names(), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(
                f"Unknown fusion {fusion!r}. Valid names: {fusion_names()}.{hint} "
                "Or pass a kfuse.layers.FusionLayer instance."
            )
        return _FUSIONS[fusion]()
    raise TypeError(
        f"`fusion` must be a name ({fusion_names()}) or a kfuse.layers.FusionLayer; "
        f"received {type(fusion).__name__}"
    )
