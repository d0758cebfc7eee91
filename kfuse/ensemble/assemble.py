"""Trained members -> ONE kfuse graph: frozen branches `member_0`... and a fixed fusion."""

import keras

from kfuse.branches.branch import Branch
from kfuse.layers import WeightedAverage
from kfuse.layers.ensemble import ProbabilityLogits, WeightedMedian, WeightedVote
from kfuse.models.graph import stack


def member_branches(members, output, input_name="x", copy=True):
    """Frozen `kfuse.Branch` objects named member_0..., all reading one input; `copy=False`
    builds them on the members' own layers (members the ensemble made and hands out as
    copies of its own, see `kfuse.trainers.members.NetworkCopy`)."""
    branches = []
    for i, model in enumerate(members):
        single = len(model.inputs) == 1
        branches.append(
            Branch(model, name=f"member_{i}", inputs=input_name if single else None,
                   trainable=False, output=output, copy=copy)
        )
    return branches


def fixed_average(branches, weights, name, logits=None, **stack_kwargs):
    """Frozen branches averaged with fixed `weights` (a `WeightedAverage` that never
    trains) in ONE graph; `logits` "softmax" / "sigmoid" ends it with `ProbabilityLogits`,
    so a graph over class probabilities hands out logits as a classification head does.
    `stack_kwargs` go to `kfuse.stack` (input_shapes, strategy, ...)."""
    fusion = WeightedAverage(weights=list(map(float, weights)), learnable=False)
    if len(branches) == 1:
        fusion = None
    meta = ProbabilityLogits(logits, name="probability_logits") if logits else None
    return stack(branches, fusion=fusion, meta=meta, head=None, compile=False, name=name, **stack_kwargs)


def weighted_graph(members, weights, task, name, input_name="x", copy=True):
    """Weighted average of member probabilities (classification) or outputs (regression);
    `copy` as for `member_branches`."""
    output = "probabilities" if task == "classification" else "raw"
    return fixed_average(member_branches(members, output, input_name, copy), weights, name)


def vote_graph(members, weights, name, input_name="x"):
    """Weighted hard vote (SAMME) over member probabilities."""
    branches = member_branches(members, "probabilities", input_name)
    return stack(branches, fusion=WeightedVote(list(map(float, weights))), head=None,
                       compile=False, name=name)


def median_graph(members, weights, name, input_name="x"):
    """Weighted median (AdaBoost.R2) of the members' raw outputs."""
    branches = member_branches(members, "raw", input_name)
    return stack(branches, fusion=WeightedMedian(list(map(float, weights))), head=None,
                       compile=False, name=name)


def scaled_sum_graph(members, learning_rate, name, input_name="x"):
    """learning_rate * sum_m member_m(x): the raw outputs summed (gradient boosting)."""
    branches = member_branches(members, "raw", input_name)
    count = len(branches)
    scale = keras.layers.Rescaling(float(learning_rate) * count, name="shrinkage")
    fusion = WeightedAverage(weights=[1.0] * count, learnable=False) if count > 1 else None
    return stack(branches, fusion=fusion, meta=scale, head=None, compile=False, name=name)
