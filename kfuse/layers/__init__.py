"""Fusion layers: each combines a list of branch tensors. Written with `keras.ops` only."""

from kfuse.layers.attention import AttentionFusion
from kfuse.layers.average import Average
from kfuse.layers.base import FusionLayer
from kfuse.layers.bilinear import BilinearFusion
from kfuse.layers.concat import Concat
from kfuse.layers.cost import cost
from kfuse.layers.cross_attention import CrossAttentionFusion
from kfuse.layers.film import FiLM
from kfuse.layers.gated import GatedFusion
from kfuse.layers.low_rank import LowRankFusion
from kfuse.layers.masking import MultiBranchFusion
from kfuse.layers.modality_dropout import ModalityDropout
from kfuse.layers.registry import fusion_names, get_fusion, register_fusion
from kfuse.layers.robust import Median, OutlierGatedAverage, TrimmedMean
from kfuse.layers.tensor_fusion import TensorFusion
from kfuse.layers.vote import Vote
from kfuse.layers.weighted import WeightedAverage

__all__ = [
    "AttentionFusion",
    "Average",
    "BilinearFusion",
    "Concat",
    "CrossAttentionFusion",
    "FiLM",
    "FusionLayer",
    "GatedFusion",
    "LowRankFusion",
    "Median",
    "ModalityDropout",
    "MultiBranchFusion",
    "OutlierGatedAverage",
    "TensorFusion",
    "TrimmedMean",
    "Vote",
    "WeightedAverage",
    "cost",
    "fusion_names",
    "get_fusion",
    "register_fusion",
]
