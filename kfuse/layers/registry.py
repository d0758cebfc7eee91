"""Fusion operators by name, so `stack(fusion="concat")` and configs can name them."""

from kfuse.layers.attention import AttentionFusion
from kfuse.layers.average import Average
from kfuse.layers.base import FusionLayer
from kfuse.layers.bilinear import BilinearFusion
from kfuse.layers.concat import Concat
from kfuse.layers.cross_attention import CrossAttentionFusion
from kfuse.layers.film import FiLM
from kfuse.layers.gated import GatedFusion
from kfuse.layers.low_rank import LowRankFusion
from kfuse.layers.robust import Median, OutlierGatedAverage, TrimmedMean
from kfuse.layers.tensor_fusion import TensorFusion
from kfuse.layers.vote import Vote
from kfuse.layers.weighted import WeightedAverage

_FUSIONS = {
    "concat": lambda: Concat(),
    "average": lambda: Average(),
    "weighted_average": lambda: WeightedAverage(),
    "soft_vote": lambda: Vote("soft"),
    "hard_vote": lambda: Vote("hard"),
    "gated": lambda: GatedFusion(units=64),
    "attention": lambda: AttentionFusion(units=64),
    "cross_attention": lambda: CrossAttentionFusion(units=64),
    "low_rank": lambda: LowRankFusion(units=64, rank=4),
    "tensor": lambda: TensorFusion(),
    "bilinear": lambda: BilinearFusion(units=64, factor=4),
    "film": lambda: FiLM(conditioning=0),  # the first branch conditions the others
    "trimmed_mean": lambda: TrimmedMean(trim=1),
    "median": lambda: Median(),
    "outlier_gated": lambda: OutlierGatedAverage(),
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
