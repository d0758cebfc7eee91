"""Ensembles that end as ONE kfuse graph: bagging, boosting, snapshots, SWA, weights.

Estimators: `VotingClassifier`, `VotingRegressor`, `BaggingClassifier`, `BaggingRegressor`, `AdaBoostClassifier` (SAMME),
`AdaBoostRegressor` (AdaBoost.R2, weighted median), `GradientBoostingClassifier`,
`GradientBoostingRegressor`, `SnapshotEnsemble`, `FastGeometricEnsemble`, `SWA`, and
`WeightedEnsemble` (fixed weights over trained members).

Every estimator follows scikit-learn's conventions (`__init__` stores its arguments,
`fit(x, y)` returns self, fitted attributes end in `_`); after `fit`, `model_` is one
`kfuse.FusedModel` whose members are frozen branches `member_0`, `member_1`... It saves
as `.keras` (`import kfuse` registers its layers, so any process that imports kfuse loads it),
exports a SavedModel with `kfuse.export` and goes through `kfuse.compare`.

One convention (`kfuse.ensemble.conventions`): training settings are constructor
arguments (`epochs`: one run of one network; `batch_size`; `fit_params`: any other
`Model.fit` keyword), `get_params` / `set_params` as scikit-learn's, and the optimizer
the builder compiled is used unless the method must replace it (then a warning says so).

Example:

```python
import keras, numpy as np
from kfuse.ensemble import BaggingClassifier, WeightedEnsemble

x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
bag = BaggingClassifier(build, n_estimators=2, epochs=1, random_state=0).fit(x, y)
sel = WeightedEnsemble(bag, method="caruana").fit(x[:30], y[:30])
sel.model_.fusion_layer.branch_weights()
```
"""

from kfuse.ensemble.bagging import BaggingClassifier, BaggingRegressor
from kfuse.ensemble.boosting import AdaBoostClassifier, samme_step
from kfuse.ensemble.boosting_r2 import AdaBoostRegressor, r2_step
from kfuse.ensemble.conventions import OptimizerReplacedWarning
from kfuse.ensemble.gradient_boosting import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    pseudo_residual,
)
from kfuse.ensemble.snapshots import FastGeometricEnsemble, SnapshotEnsemble, TriangularCycle
from kfuse.ensemble.swa import SWA, recompute_batchnorm
from kfuse.ensemble.voting import VotingClassifier, VotingRegressor
from kfuse.ensemble.weights import WeightedEnsemble, caruana, ensemble_weights
from kfuse.layers.ensemble import WeightedMedian, WeightedVote

__all__ = [
    "SWA",
    "AdaBoostClassifier",
    "AdaBoostRegressor",
    "BaggingClassifier",
    "BaggingRegressor",
    "FastGeometricEnsemble",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "OptimizerReplacedWarning",
    "SnapshotEnsemble",
    "TriangularCycle",
    "VotingClassifier",
    "VotingRegressor",
    "WeightedEnsemble",
    "WeightedMedian",
    "WeightedVote",
    "caruana",
    "ensemble_weights",
    "pseudo_residual",
    "r2_step",
    "recompute_batchnorm",
    "samme_step",
]
