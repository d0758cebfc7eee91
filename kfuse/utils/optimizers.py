"""Fresh Keras optimizers: the one way kfuse copies an optimizer or makes one from a spec.

An optimizer holds the state of the model it trains, so kfuse never shares one between
models: each model gets a copy with the same class and settings (`copy_optimizer`) or a new
one from a name, config dict or instance (`new_optimizer`).

Example:

```python
import keras
from kfuse.utils.optimizers import copy_optimizer, new_optimizer

adam = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-6)
copy = copy_optimizer(adam, learning_rate=0.1)
copy is not adam, copy.get_config()["epsilon"]  # True, 1e-06
new_optimizer("sgd", 0.5).get_config()["learning_rate"]  # 0.5
```
"""

import keras


def copy_optimizer(optimizer, **changes):
    """A new optimizer of `optimizer`'s class and settings (its state not copied), with
    the settings in `changes` (e.g. `learning_rate=0.1`) replaced."""
    config = optimizer.get_config()
    config.update(changes)
    return type(optimizer).from_config(config)


def new_optimizer(spec, learning_rate=None):
    """A fresh optimizer (never shared between models) from a name, config dict or
    instance; `learning_rate`, when given, replaces its own."""
    if isinstance(spec, keras.optimizers.Optimizer):
        optimizer = copy_optimizer(spec)
    else:
        optimizer = keras.optimizers.get(spec)
    if learning_rate is not None:
        optimizer = copy_optimizer(optimizer, learning_rate=learning_rate)
    return optimizer
