"""KerasTuner search over fusion designs: `FusionHyperModel`, `Range`, `make_tuner`.

Example:

```python
import tempfile
import keras, kfuse

base = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(10)])
branches = [kfuse.Branch(base, name="a", output="logits"), kfuse.Branch(base, name="b", output="logits")]
hypermodel = kfuse.tuning.FusionHyperModel(branches, head=10, fusions=["concat", "gated"])
tuner = kfuse.tuning.make_tuner(hypermodel, "bayesian", objective="val_accuracy", max_trials=10,
                                directory=tempfile.mkdtemp())
```
"""

from kfuse.tuning.hypermodel import FusionHyperModel
from kfuse.tuning.ray_search import RaySearchResult, search_on_ray
from kfuse.tuning.space import Range
from kfuse.tuning.tuners import TUNERS, make_tuner

__all__ = ["TUNERS", "FusionHyperModel", "Range", "RaySearchResult", "make_tuner", "search_on_ray"]
