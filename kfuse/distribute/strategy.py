"""Strategy resolution: a name or a `tf.distribute.Strategy` to a strategy, and its scope.

The floor below `kfuse.models.graph`: `stack(..., strategy=)` resolves its strategy here, and
`kfuse.distribute` (scope-safe building, precision, data) builds on it. TensorFlow is
imported inside the functions, so importing this module never needs it.
"""

import contextlib
import json
import os

from kfuse.utils.backend_support import require

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu", "one_device")


def get_strategy(spec="auto", tpu=None):
    """Resolve `spec` (a name from `STRATEGY_NAMES` or a Strategy) to a `tf.distribute.Strategy`.

    Args:
        spec (str | tf.distribute.Strategy | None): see the module table.
        tpu (str | None): TPU name or address for "tpu"/"auto" (default: $TPU_NAME,
            $COLAB_TPU_ADDR).

    Example:

    ```python
    import kfuse
    kfuse.distribute.strategy.get_strategy("default").num_replicas_in_sync  # 1
    ```

    Raises `kfuse.utils.backend_support.BackendError` on the JAX and PyTorch backends.
    """
    require(
        f"strategy={spec!r} (a tf.distribute strategy)", ("tensorflow",), needs_tensorflow=True,
        instead="Leave strategy=None here (on JAX, keras.distribution shards data and models), "
        "or run with KERAS_BACKEND=tensorflow.",
    )
    import tensorflow as tf

    if isinstance(spec, tf.distribute.Strategy):
        if isinstance(spec, tf.distribute.MultiWorkerMirroredStrategy):
            _enable_multi_worker_fix()
        elif type(spec) is tf.distribute.MirroredStrategy:
            _warn_if_second_mirrored(spec)
        return spec
    if spec is None or spec == "default":
        return tf.distribute.get_strategy()
    if not isinstance(spec, str) or spec not in STRATEGY_NAMES:
        raise ValueError(
            f"Unknown strategy {spec!r}; valid: {', '.join(map(repr, STRATEGY_NAMES))}, "
            "or a tf.distribute.Strategy"
        )
    if spec == "auto":
        if _tpu_hint(tpu) is not None:
            return tpu_strategy(tpu)
        gpus = tf.config.list_logical_devices("GPU")
        return mirrored_strategy([d.name for d in gpus]) if len(gpus) > 1 else tf.distribute.get_strategy()
    if spec == "mirrored":
        return mirrored_strategy(mirrored_devices())
    if spec == "multi_worker":
        parse_tf_config()  # clear errors for a missing or malformed TF_CONFIG
        _enable_multi_worker_fix()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if spec == "tpu":
        return tpu_strategy(tpu)
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


#: the MirroredStrategy made for each device set ("mirrored", "auto"), and the first one
#: seen for each device set (passed in, or made here)
_MIRRORED = {}
_FIRST_MIRRORED = {}


def mirrored_strategy(devices):
    """The process's one `MirroredStrategy` over `devices`, made on first use.

    Each new MirroredStrategy restarts TensorFlow's collective all-reduce keys, and the
    runtime remembers the shapes a key reduced: a second strategy over the same devices
    then fails on any model whose gradients are shaped otherwise ("Shape mismatch in the
    collective instance 100", tensorflow/tensorflow#62790). One strategy per device set,
    reused by every stack, Stacker and tuning trial that names it, never meets that.

    Example:

    ```python
    from kfuse.distribute.strategy import mirrored_strategy

    mirrored_strategy(["/cpu:0"]) is mirrored_strategy(["/cpu:0"])  # True
    ```
    """
    import tensorflow as tf

    key = tuple(devices)
    if key not in _MIRRORED:
        strategy = tf.distribute.MirroredStrategy(devices=list(key))
        _MIRRORED[key] = strategy
        _FIRST_MIRRORED.setdefault(tuple(strategy.extended.worker_devices), strategy)
    return _MIRRORED[key]


def _warn_if_second_mirrored(strategy):
    """Warn when `strategy` is a second MirroredStrategy over devices another one used."""
    import warnings

    devices = tuple(strategy.extended.worker_devices)
    if len(devices) < 2:
        return  # one replica: no all-reduce
    first = _FIRST_MIRRORED.setdefault(devices, strategy)
    if first is not strategy:
        warnings.warn(
            f"A second tf.distribute.MirroredStrategy over {list(devices)} in this process: "
            "TensorFlow restarts its collective all-reduce keys with every new strategy, and "
            "training a model of other shapes under it fails with 'Shape mismatch in the "
            "collective instance' (tensorflow/tensorflow#62790). Create one strategy and pass "
            "it everywhere, or pass strategy='mirrored' (kfuse reuses one per device set).",
            RuntimeWarning,
            stacklevel=3,
        )


def mirrored_devices():
    """The devices "mirrored" replicates over: all GPUs, else all logical CPUs."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _enable_multi_worker_fix():
    from kfuse.distribute import mwms_compat

    mwms_compat.install()


# -- TF_CONFIG ----------------------------------------------------------------------------
def parse_tf_config(value=None):
    """Read and check TF_CONFIG (a JSON string; default: the environment variable).

    Returns the parsed dict. Raises ValueError naming what is wrong: missing, not JSON,
    no `cluster`, a job that is not a list of "host:port" strings, a `task` whose type is
    not a job of the cluster or whose index is out of range.

    Example:

    ```python
    import kfuse
    kfuse.distribute.strategy.parse_tf_config(
        '{"cluster": {"worker": ["localhost:12345", "localhost:23456"]},'
        ' "task": {"type": "worker", "index": 0}}')
    ```
    """
    if value is None:
        value = os.environ.get("TF_CONFIG")
        if not value:
            raise ValueError(
                "strategy='multi_worker' needs the TF_CONFIG environment variable, e.g. "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
    if isinstance(value, dict):
        config = value
    else:
        try:
            config = json.loads(value)
        except (TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {value!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; received {config!r}")
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"TF_CONFIG needs a non-empty 'cluster' object of job -> addresses; received {cluster!r}")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f"TF_CONFIG cluster job {job!r} must be a non-empty list of 'host:port'; received {addresses!r}")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not isinstance(address, str) or not host or not port.isdigit():
                raise ValueError(f"TF_CONFIG cluster job {job!r}: {address!r} is not 'host:port'")
    task = config.get("task")
    if not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG needs a 'task' object with 'type' and 'index'; received {task!r}")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise ValueError(f"TF_CONFIG task type {kind!r} is not a job of the cluster {sorted(cluster)}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(
            f"TF_CONFIG task index {index!r} is out of range for job {kind!r} with "
            f"{len(cluster[kind])} address(es)"
        )
    return config


# -- TPU ----------------------------------------------------------------------------------
def _tpu_hint(tpu=None):
    """Where a TPU might be: the argument, an environment variable, or a local device."""
    if tpu:
        return tpu
    for variable in ("TPU_NAME", "COLAB_TPU_ADDR"):
        if os.environ.get(variable):
            return os.environ[variable]
    if any(os.path.exists(f"/dev/accel{i}") for i in range(4)) or os.path.exists("/dev/vfio/0"):
        return "local"
    return None


def tpu_strategy(tpu=None):
    """Connect to a TPU and return a `tf.distribute.TPUStrategy`.

    Looks at `tpu` (a name or grpc:// address), then $TPU_NAME, $COLAB_TPU_ADDR, then a
    local TPU (/dev/accel*, /dev/vfio). Raises RuntimeError naming all of these when no
    TPU is found or the connection fails.
    """
    import tensorflow as tf

    looked = (
        f"the tpu= argument ({tpu!r}), $TPU_NAME ({os.environ.get('TPU_NAME')!r}), "
        f"$COLAB_TPU_ADDR ({os.environ.get('COLAB_TPU_ADDR')!r}), local TPU devices "
        "(/dev/accel0-3, /dev/vfio/0)"
    )
    hint = _tpu_hint(tpu)
    if hint is None:
        raise RuntimeError(f"strategy='tpu': no TPU found. Looked for {looked}.")
    name = "local" if hint == "local" else hint
    if os.environ.get("COLAB_TPU_ADDR") == hint and not hint.startswith("grpc://"):
        name = f"grpc://{hint}"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as error:
        raise RuntimeError(f"strategy='tpu': could not connect to TPU {name!r} ({error}). Looked for {looked}.") from error
    return tf.distribute.TPUStrategy(resolver)


# -- one set of weights on every worker -------------------------------------------------
def sync_from_chief(strategy, variables):
    """Give every worker the chief's values of `variables` (a no-op within one process).

    tf.distribute broadcasts the initial value of each variable it creates, but the weights
    kfuse copies from a user's base model are each worker's own: unseeded bases differ
    between processes, and the replicas would train apart silently. Each dtype's values
    go as one flat vector through one cross-worker sum in which only replica 0 (the
    chief's first device) contributes: every worker ends with the chief's values, exactly.

    Example:

    ```python
    import keras
    from kfuse.distribute.strategy import get_strategy, sync_from_chief

    strategy = get_strategy("default")
    sync_from_chief(strategy, keras.layers.Dense(2).weights)  # one process: nothing to do
    ```
    """
    from kfuse.distribute.mwms_compat import is_multi_worker

    if strategy is None or not is_multi_worker(strategy):
        return
    import tensorflow as tf

    groups = {}
    for variable in variables:
        if tf.as_dtype(variable.dtype).is_floating or tf.as_dtype(variable.dtype).is_integer:
            groups.setdefault(tf.as_dtype(variable.dtype), []).append(variable)
    with strategy.scope():
        for group in groups.values():
            flat = tf.concat([tf.reshape(tf.convert_to_tensor(v.value), [-1]) for v in group], 0)

            def chief_only(context, flat=flat):
                return flat if context.replica_id_in_sync_group == 0 else tf.zeros_like(flat)

            total = strategy.reduce(
                "SUM", strategy.experimental_distribute_values_from_function(chief_only), axis=None
            )
            start = 0
            for variable in group:
                size = int(tf.size(variable.value))
                variable.assign(tf.reshape(total[start : start + size], variable.shape))
                start += size


def entered_scope(strategy):
    """The scope of a resolved `strategy`: a null context for None, or when the caller is
    inside that strategy's scope already.

    Example:

    ```python
    from kfuse.distribute.strategy import entered_scope

    with entered_scope(None):  # no strategy: nothing to enter
        pass
    ```
    """
    if strategy is None:
        return contextlib.nullcontext()
    import tensorflow as tf

    if tf.distribute.has_strategy() and tf.distribute.get_strategy() is strategy:
        return contextlib.nullcontext()
    return strategy.scope()


def strategy_scope(strategy):
    """(context manager, strategy) for a strategy name, object or None (no scope).

    Example:

    ```python
    from kfuse.distribute.strategy import strategy_scope

    scope, resolved = strategy_scope(None)  # no strategy: a null context, None
    with scope:
        pass
    ```
    """
    if strategy is None:
        return contextlib.nullcontext(), None
    resolved = get_strategy(strategy)
    return resolved.scope(), resolved
