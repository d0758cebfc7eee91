"""kfuse: fuse several Keras networks into one Keras model.

Public names: `Branch`, `stack`, `early_fusion`, `FusedModel`, and the modules `layers`
and `heads`. TensorFlow-only modules (`kfuse.distribute`, `kfuse.export`, `kfuse.datasets.mnist1d`)
are imported on first use, so `import kfuse` works on any Keras backend.
"""

import importlib

from kfuse.utils.console import quiet_tensorflow_import

quiet_tensorflow_import()  # the `kfuse` command only: TensorFlow's start-up lines kept off stderr

from kfuse import layers  # noqa: E402
from kfuse.branches.branch import Branch  # noqa: E402
from kfuse.layers import heads  # noqa: E402
from kfuse.models.fused import FusedModel  # noqa: E402
from kfuse.models.graph import early_fusion, stack  # noqa: E402
from kfuse.version import __version__  # noqa: E402

_LAZY = {
    "distribute": "kfuse.distribute",
    "export": "kfuse.export",
    "data": "kfuse.datasets.mnist1d",
    "training": "kfuse.stacking",
    "evaluation": "kfuse.evaluation",
    "tuning": "kfuse.tuning",
    "ensemble": "kfuse.ensemble",
    "merge": "kfuse.merge",
    "datasets": "kfuse.datasets",
    "features": "kfuse.features",
}
_LAZY_NAMES = {
    "Stacker": ("kfuse.stacking", "Stacker"),
    "compare": ("kfuse.evaluation", "compare"),
}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    if name in _LAZY_NAMES:
        module, attr = _LAZY_NAMES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'kfuse' has no attribute {name!r}")


# Saved ensemble graphs hold kfuse.ensemble's layers and schedules (WeightedVote,
# TriangularCycle): register them on `import kfuse`, as kfuse.layers' are, so that
# `keras.saving.load_model` reads any kfuse .keras file without a further import.
import kfuse.ensemble.snapshots  # noqa: E402, F401
import kfuse.layers.ensemble  # noqa: E402, F401

__all__ = ["Branch", "FusedModel", "early_fusion", "heads", "layers", "stack", "__version__"]
