"""A narrow fix that lets Keras 3 `fit` run under `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3 tests MirroredStrategy only; under MultiWorkerMirroredStrategy (MWMS) `fit` fails
twice (keras-team/keras#20585, open upstream):

1. `TensorFlowTrainer._maybe_symbolic_build` takes the first distributed batch and calls
   `strategy.reduce("MEAN", batch, axis=None)` on it only to read its shapes; MWMS's
   collective reduce cannot take that nested structure of `PerReplica` values and
   raises "Attempt to convert a value (PerReplica...) to a Tensor".
2. `reduce_per_replica` reduces every logged value with
   `strategy.reduce("MEAN", v, axis=0)` when it detects multi-worker mode; the logged
   loss and metric values are scalars, which have no axis 0.

`install()` wraps exactly those two functions of the installed Keras. Each wrapper hands
every call straight to the original unless the strategy is MWMS in multi-worker mode, so
single-machine training (default, Mirrored, TPU strategies) runs the untouched Keras
code. Under MWMS:

1. the symbolic build reads the shapes of the first local replica's batch (no collective
   op: shapes are all it needs);
2. scalar values are reduced with `axis=None` (a plain cross-worker mean); anything
   else still goes to the original function.

The patch is applied only when the installed Keras still contains the broken calls (its
source is checked, and the version is compared with the range kfuse tested), so a Keras
release that fixes #20585 is left alone. `kfuse.distribute.get_strategy("multi_worker")`
installs it; call `install()` yourself when you build an MWMS strategy by hand and train
a model that kfuse did not build.

Example:

```python
from kfuse.distribute import mwms_compat
mwms_compat.status()  # {'keras': '3.15.1', 'needed': True, 'installed': False, ...}
```
"""

import inspect
import logging
import warnings

UPSTREAM_ISSUE = "https://github.com/keras-team/keras/issues/20585"
#: Keras versions (inclusive) on which tests/distribute/test_multiworker.py proved the patch
TESTED_KERAS = ((3, 15), (3, 15))
#: what the broken upstream code contains (checked in the installed source)
_FINGERPRINTS = {
    "reduce_per_replica": 'strategy.reduce("MEAN", v, axis=0)',
    "_maybe_symbolic_build": "self.distribute_strategy.reduce(",
}

_log = logging.getLogger(__name__)
_originals = {}


def _trainer_module():
    from keras.src.backend.tensorflow import trainer

    return trainer


def keras_version():
    import keras

    return keras.__version__


def _version_tuple(text):
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _broken_calls_present():
    """{function name: bool}: does the installed Keras still contain each broken call?"""
    module = _trainer_module()
    targets = {
        "reduce_per_replica": getattr(module, "reduce_per_replica", None),
        "_maybe_symbolic_build": getattr(module.TensorFlowTrainer, "_maybe_symbolic_build", None),
    }
    found = {}
    for name, function in targets.items():
        function = _originals.get(name, function)
        try:
            source = inspect.getsource(function) if function is not None else ""
        except (OSError, TypeError):
            source = ""
        found[name] = _FINGERPRINTS[name] in source
    return found


def status():
    """What the compatibility layer sees: Keras version, whether the fix is needed/on."""
    found = _broken_calls_present()
    version = keras_version()
    return {
        "keras": version,
        "tested_range": ".".join(map(str, TESTED_KERAS[0])) + " - " + ".".join(map(str, TESTED_KERAS[1])),
        "broken_calls": found,
        "needed": any(found.values()),
        "installed": is_installed(),
        "upstream_issue": UPSTREAM_ISSUE,
    }


def is_installed():
    return bool(_originals)


def is_multi_worker(strategy):
    """True for a MultiWorkerMirroredStrategy that spans several workers."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return bool(strategy.extended._in_multi_worker_mode())


def install():
    """Wrap the two failing Keras functions (see the module docstring). Idempotent.

    Returns True when the wrappers are in place, False when the installed Keras does not
    need them (the broken calls are gone: presumably fixed upstream).
    """
    if is_installed():
        return True
    found = _broken_calls_present()
    if not any(found.values()):
        _log.info("Keras %s no longer has the calls of %s; no patch applied", keras_version(), UPSTREAM_ISSUE)
        return False
    version = _version_tuple(keras_version())
    if not TESTED_KERAS[0] <= version <= TESTED_KERAS[1]:
        warnings.warn(
            f"kfuse's MultiWorkerMirroredStrategy fix ({UPSTREAM_ISSUE}) was tested with Keras "
            f"{status()['tested_range']}; Keras {keras_version()} still contains the failing "
            "calls, so the fix is applied anyway. Report problems to kfuse.",
            stacklevel=2,
        )
    module = _trainer_module()
    if found["reduce_per_replica"]:
        _originals["reduce_per_replica"] = module.reduce_per_replica
        module.reduce_per_replica = _reduce_per_replica
    if found["_maybe_symbolic_build"]:
        _originals["_maybe_symbolic_build"] = module.TensorFlowTrainer._maybe_symbolic_build
        module.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    return True


def uninstall():
    """Put the original Keras functions back."""
    module = _trainer_module()
    if "reduce_per_replica" in _originals:
        module.reduce_per_replica = _originals.pop("reduce_per_replica")
    if "_maybe_symbolic_build" in _originals:
        module.TensorFlowTrainer._maybe_symbolic_build = _originals.pop("_maybe_symbolic_build")


def _first_local(strategy, value):
    import tensorflow as tf

    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """`TensorFlowTrainer._maybe_symbolic_build`, reading shapes locally under MWMS."""
    import tensorflow as tf

    strategy = self._distribute_strategy
    original = _originals["_maybe_symbolic_build"]
    if strategy is None or iterator is None or not is_multi_worker(strategy):
        return original(self, iterator=iterator, data_batch=data_batch)
    for _, _, it in iterator:
        batch = next(it)
        data_batch = tf.nest.map_structure(lambda v: _first_local(strategy, v), batch)
        break
    with strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _rank(strategy, value):
    shape = getattr(_first_local(strategy, value), "shape", None)
    return None if shape is None else shape.rank


def _reduce_per_replica(values, strategy, reduction):
    """`reduce_per_replica`, reducing scalars with `axis=None` under MWMS."""
    import tensorflow as tf

    original = _originals["reduce_per_replica"]
    if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
        return original(values, strategy, reduction)

    def reduce_one(value):
        if _rank(strategy, value) == 0:
            return strategy.reduce("MEAN", value, axis=None)
        return original(value, strategy, reduction)

    return tf.nest.map_structure(reduce_one, values)
