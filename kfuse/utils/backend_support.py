"""Which Keras backend runs here, and a clear error where a capability needs another.

kfuse's graph, training, ensembles, merging, comparison and tuning run on keras.ops on
every backend. Two capabilities are TensorFlow's own: `tf.distribute` strategies
(`stack(..., strategy=)`, `kfuse.distribute`) and the SavedModel export (`kfuse.export`,
which the JAX backend reaches through TensorFlow too). `require` raises at the call,
naming the backend and what to use instead, rather than failing deep inside Keras.

Example:

```python
from kfuse.utils.backend_support import require

require("a .keras file", backends=("tensorflow", "jax", "torch"), instead="")  # runs anywhere
```
"""

import keras

NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch", "numpy": "NumPy"}


class BackendError(RuntimeError):
    """A kfuse capability that the current Keras backend (or environment) cannot run."""


def backend_name():
    """The Keras backend of this process, as people write it ("PyTorch", "JAX"...)."""
    backend = keras.backend.backend()
    return NAMES.get(backend, backend)


def require(capability, backends, instead, needs_tensorflow=False):
    """Raise `BackendError` unless `capability` runs on this process's Keras backend.

    Args:
        capability (str): what the user called, e.g. "kfuse.export.export_saved_model".
        backends (tuple[str, ...]): the Keras backends it runs on.
        instead (str): one sentence: what to use on the other backends.
        needs_tensorflow (bool): it also needs the `tensorflow` package importable.
    """
    backend = keras.backend.backend()
    if backend not in backends:
        runs_on = " or ".join(NAMES.get(b, b) for b in backends)
        raise BackendError(
            f"{capability} runs on the {runs_on} backend of Keras; this process runs Keras "
            f"on {backend_name()} (KERAS_BACKEND={backend!r}). {instead}".rstrip()
        )
    if needs_tensorflow:
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            raise BackendError(
                f"{capability} needs TensorFlow installed (pip install tensorflow-cpu); Keras "
                f"runs on {backend_name()} here without it. {instead}".rstrip()
            ) from None
