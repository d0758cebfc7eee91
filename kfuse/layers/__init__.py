"""Fusion layers: each combines a list of branch tensors. Written with `keras.ops` only."""

from kfuse.layers.average import Average
from kfuse.layers.base import FusionLayer
from kfuse.layers.concat import Concat
from kfuse.layers.registry import fusion_names, get_fusion, register_fusion
from kfuse.layers.vote import Vote
from kfuse.layers.weighted import WeightedAverage

__all__ = [
    "Average",
    "Concat",
    "FusionLayer",
    "Vote",
    "WeightedAverage",
    "fusion_names",
    "get_fusion",
    "register_fusion",
]
