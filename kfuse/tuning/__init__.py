"""KerasTuner search over fusion designs: `FusionHyperModel`, `Range`, `make_tuner`.

Example:

```python
import kfuse
hypermodel = kfuse.tuning.FusionHyperModel(branches, head=10, fusions=["concat", "gated"])
tuner = kfuse.tuning.make_tuner(hypermodel, "bayesian", objective="val_accuracy", max_trials=10)
```
"""

from kfuse.tuning.hypermodel import FusionHyperModel
from kfuse.tuning.space import Range
from kfuse.tuning.tuners import TUNERS, make_tuner

__all__ = ["TUNERS", "FusionHyperModel", "Range", "make_tuner"]
