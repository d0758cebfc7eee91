"""`tf.distribute` for fused models: strategy resolution, scope-safe building, XLA and
mixed precision (TensorFlow only; imported lazily by `kfuse.stack(..., strategy=)`).

| spec             | strategy                                                            |
|------------------|---------------------------------------------------------------------|
| "auto"           | TPUStrategy when a TPU resolves, MirroredStrategy over all GPUs when there are several, else the default strategy |
| "mirrored"       | MirroredStrategy over all GPUs, or over all logical CPUs when there is no GPU |
| "multi_worker"   | MultiWorkerMirroredStrategy from the TF_CONFIG environment variable  |
| "tpu"            | TPUStrategy (the `tpu=` name, $TPU_NAME, $COLAB_TPU_ADDR or a local TPU) |
| "one_device"     | OneDeviceStrategy on the first GPU, else the CPU                    |
| "default"/None   | the current (default) strategy                                      |
| a Strategy       | passed through                                                      |

`kfuse.stack(..., strategy=)` creates every variable inside the strategy's scope: base
models are cloned with their weights inside it, so a base built outside the scope never
meets "variable created outside scope". Under MultiWorkerMirroredStrategy kfuse switches
on `kfuse.mwms_compat`, a narrow fix for keras-team/keras#20585.

Example:

```python
import kfuse
strategy = kfuse.distribute.get_strategy("auto")
model = kfuse.distribute.distributed_stack(branches, strategy=strategy, head=10,
                                           jit_compile=True, precision="mixed_bfloat16")
```
"""

import contextlib
import json
import os

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu", "one_device")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def get_strategy(spec="auto", tpu=None):
    """Resolve `spec` (a name from `STRATEGY_NAMES` or a Strategy) to a `tf.distribute.Strategy`.

    Args:
        spec: see the module table.
        tpu: TPU name or address for "tpu"/"auto" (default: $TPU_NAME, $COLAB_TPU_ADDR).

    Example:

    ```python
    import kfuse
    kfuse.distribute.get_strategy("default").num_replicas_in_sync  # 1
    ```
    """
    import tensorflow as tf

    if isinstance(spec, tf.distribute.Strategy):
        if isinstance(spec, tf.distribute.MultiWorkerMirroredStrategy):
            _enable_multi_worker_fix()
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
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if spec == "mirrored":
        return tf.distribute.MirroredStrategy(devices=mirrored_devices())
    if spec == "multi_worker":
        parse_tf_config()  # clear errors for a missing or malformed TF_CONFIG
        _enable_multi_worker_fix()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if spec == "tpu":
        return tpu_strategy(tpu)
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def mirrored_devices():
    """The devices "mirrored" replicates over: all GPUs, else all logical CPUs."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _enable_multi_worker_fix():
    from kfuse import mwms_compat

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
    kfuse.distribute.parse_tf_config(
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


# -- devices, precision, data ---------------------------------------------------------------
def configure_logical_cpus(n):
    """Split the CPU into `n` logical devices (for MirroredStrategy tests and benchmarks).

    Must run before TensorFlow initialises its runtime (before any tensor is created);
    raises RuntimeError otherwise.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return [d.name for d in tf.config.list_logical_devices("CPU")]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot split the CPU into {n} logical devices: TensorFlow's runtime is already "
            f"initialised ({error}). Call configure_logical_cpus first thing in the process."
        ) from error
    return [d.name for d in tf.config.list_logical_devices("CPU")]


@contextlib.contextmanager
def precision_policy(policy):
    """Build layers under a Keras dtype policy ("float32", "mixed_float16",
    "mixed_bfloat16"), restoring the previous global policy afterwards.

    Fresh layers (fusion, meta-learner, fresh branches) compute in the policy's dtype;
    cloned base models keep the dtype they were saved with; heads stay float32.
    """
    import keras

    if policy is None:
        yield
        return
    if policy not in PRECISIONS:
        raise ValueError(f"Unknown precision {policy!r}; valid: {PRECISIONS}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def distributed_stack(
    branches,
    strategy="auto",
    jit_compile="auto",
    precision=None,
    optimizer="adam",
    steps_per_execution=1,
    **stack_kwargs,
):
    """`kfuse.stack` built and compiled for a strategy, with XLA and mixed precision.

    Args:
        branches, **stack_kwargs: as for `kfuse.stack` (`head` is needed to compile).
        strategy: a name (see the module table) or a `tf.distribute.Strategy`.
        jit_compile: passed to `model.compile`: True forces XLA (also on CPU, where
            Keras's "auto" turns it off). Refused with several replicas: Keras 3 compiles
            the whole cross-replica step, which XLA cannot place on several devices.
        precision: None (the current policy), "float32", "mixed_float16" or
            "mixed_bfloat16". The head's output stays float32; with "mixed_float16"
            Keras wraps the optimizer in a LossScaleOptimizer.
        optimizer: a Keras optimizer or its name (created inside the scope).

    Returns:
        a compiled `kfuse.FusedModel` whose variables live in the strategy's scope.

    Example:

    ```python
    import keras, kfuse
    mlp = keras.Sequential([keras.Input((40,), name="signal"), keras.layers.Dense(10)])
    model = kfuse.distribute.distributed_stack(
        [kfuse.Branch(mlp, name="mlp")], strategy="default", head=10, jit_compile=False)
    ```
    """
    import keras

    from kfuse.graph import stack

    if stack_kwargs.get("compile") is False:
        raise ValueError("distributed_stack compiles the model; call kfuse.stack(..., compile=False) instead")
    stack_kwargs.pop("compile", None)
    resolved = get_strategy(strategy)
    if jit_compile is True and resolved.num_replicas_in_sync > 1 and not _is_tpu(resolved):
        raise ValueError(
            f"jit_compile=True under {type(resolved).__name__} with "
            f"{resolved.num_replicas_in_sync} replicas: Keras 3 XLA-compiles the whole "
            "cross-replica step, and one XLA computation cannot reach variables on several "
            "devices (TensorFlow's XLA known issue 'tf.Variable on a different device'). Use "
            "jit_compile=False (or 'auto') with several replicas, or one device for XLA."
        )
    with precision_policy(precision), resolved.scope():
        model = stack(branches, strategy=resolved, compile=False, **stack_kwargs)
        head = model.head
        if head is None:
            raise ValueError("distributed_stack needs head= so it can compile the model (loss and metrics)")
        model.compile(
            optimizer=keras.optimizers.get(optimizer),
            loss=head.loss(),
            metrics=head.metrics(),
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
        )
    return model


def _is_tpu(strategy):
    import tensorflow as tf

    return isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))


def local_dataset(x, y=None, batch_size=32, shuffle=False, seed=0):
    """A `tf.data.Dataset` that every worker reads whole (auto-sharding off).

    Under MultiWorkerMirroredStrategy each worker then trains on its own local data;
    `batch_size` is the global batch, split across all replicas of all workers.
    """
    import tensorflow as tf

    data = (x,) if y is None else (x, y)
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if shuffle:
        dataset = dataset.shuffle(4096, seed=seed)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.batch(batch_size).with_options(options)
