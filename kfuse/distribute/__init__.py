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
on `kfuse.distribute.mwms_compat`, a narrow fix for keras-team/keras#20585.

Example:

```python
import keras, kfuse

base = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(10)])
branches = [kfuse.Branch(base, name="a"), kfuse.Branch(base, name="b")]
strategy = kfuse.distribute.get_strategy("auto")
model = kfuse.distribute.distributed_stack(branches, strategy=strategy, head=10,
                                           jit_compile=True, precision="mixed_bfloat16")
```
"""

import contextlib

from kfuse.distribute.ray_train import RayFitResult, fit_on_ray  # noqa: F401  (imports no Ray)
from kfuse.distribute.strategy import (  # noqa: F401  (re-exported: kfuse.distribute.get_strategy)
    STRATEGY_NAMES,
    _enable_multi_worker_fix,
    _tpu_hint,
    get_strategy,
    mirrored_devices,
    parse_tf_config,
    strategy_scope,
    tpu_strategy,
)

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


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
        branches (list[Branch]): as for `kfuse.stack`.
        **stack_kwargs (Any): as for `kfuse.stack` (`head` is needed to compile).
        strategy (str | tf.distribute.Strategy): a name (see the module table) or a
            `tf.distribute.Strategy`.
        jit_compile (bool | str): passed to `model.compile`: True forces XLA (also on CPU, where
            Keras's "auto" turns it off). Refused with several replicas: Keras 3 compiles
            the whole cross-replica step, which XLA cannot place on several devices.
        precision (str | None): None (the current policy), "float32", "mixed_float16" or
            "mixed_bfloat16". The head's output stays float32; with "mixed_float16"
            Keras wraps the optimizer in a LossScaleOptimizer.
        optimizer (str | keras.optimizers.Optimizer): a Keras optimizer or its name (created inside
            the scope).

    Returns:
        FusedModel: a compiled `kfuse.FusedModel` whose variables live in the strategy's scope.

    Example:

    ```python
    import keras, kfuse
    mlp = keras.Sequential([keras.Input((40,), name="signal"), keras.layers.Dense(10)])
    model = kfuse.distribute.distributed_stack(
        [kfuse.Branch(mlp, name="mlp")], strategy="default", head=10, jit_compile=False)
    ```
    """
    import keras

    from kfuse.models.graph import stack

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
