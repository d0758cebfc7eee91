"""What every data-aware merge shares: the models checked for one architecture, the
weighted average it starts from, and the BatchNorm statistics recomputed at the end."""

import warnings

import keras
import numpy as np

from ..batchnorm import batchnorm_layers, repair_batchnorm
from ..checks import check_same, weight_specs
from ..sources import load_keras_file


def load_models(models, base=None):
    """``(models, base)`` as ``keras.Model``s (``.keras`` paths loaded with safe_mode),
    checked to share one architecture."""
    def one(m, name):
        return m if isinstance(m, keras.Model) else load_keras_file(str(m), name)

    models = [one(m, f"models[{i}]") for i, m in enumerate(models)]
    base = one(base, "base") if base is not None else None
    first, first_name = (base, "base") if base is not None else (models[0], "models[0]")
    reference = weight_specs(first)
    for i, m in enumerate(models):
        if m is not first:
            check_same(reference, weight_specs(m), f"models[{i}]", first_name)
    return models, base


def averaged(models, weights=None):
    """The weighted average of ``models`` (``merge(..., "linear")``), BatchNorm statistics
    copied from the first (``finish`` recomputes them)."""
    from ..api import merge

    weights = [1.0] * len(models) if weights is None else list(weights)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The merged model has BatchNormalization")
        return merge(models, "linear", model_parameters=[{"weight": float(w)} for w in weights])


def finish(merged, xs, batch_size=256):
    """Recompute the merged model's BatchNorm statistics on all the data; returns it."""
    if batchnorm_layers(merged):
        repair_batchnorm(merged, np.concatenate(xs), batch_size=batch_size)
    return merged


def model_weights(models, n):
    """Per-model coefficients (``weight`` of ``model_parameters``), default 1."""
    weights = [1.0] * n if models is None else [float(p.get("weight", 1.0)) for p in models]
    if len(weights) != n:
        raise ValueError(f"model_parameters has {len(weights)} entries for {n} models")
    return weights

