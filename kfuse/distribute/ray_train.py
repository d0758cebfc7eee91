"""Train one fused model on several machines: Ray Train launches the workers, sets
`TF_CONFIG` on each, and kfuse trains under `MultiWorkerMirroredStrategy` there.

`fit_on_ray(build_fn, x, y, num_workers=2)` ships `build_fn` and the data (once, through
Ray's object store) to `num_workers` Ray Train workers (`ray.train.tensorflow.
TensorflowTrainer`), each builds the model with `build_fn(strategy)` and trains on its
share of every global batch; the gradients are all-reduced, so the replicas stay
identical. Every worker saves its weights into Ray Train's checkpoint; the driver checks
they are identical and returns a model built here with them.

The worker's share of a global batch of `batch_size` rows is its `1/num_workers` slice
(`worker_dataset`): together the workers see the same rows per step as one process
training with `batch_size`, so the result matches single-process training up to the
order of float sums (kfuse's test: 2 workers against 1 process, largest weight
difference under 1e-5 after 3 epochs).

Example:

```python
import keras, numpy as np, kfuse
from kfuse.distribute.ray_train import worker_dataset

x = np.zeros((8, 4), "float32")
batches = list(worker_dataset({"x": x}, np.zeros(8), batch_size=4, worker=1, num_workers=2))
len(batches), batches[0][0]["x"].shape  # (2, TensorShape([2, 4])): rows 2-3, 6-7
```
"""

import dataclasses
import hashlib
import os
import shutil
import tempfile
import uuid

from kfuse.utils.ray_session import check_shippable, grow_gpu_memory, ray_session, require_ray

FEATURE = "kfuse.distribute.fit_on_ray"
_BUILD_HINT = (
    "a module-level function build_fn(strategy) that builds and returns the compiled model "
    "(e.g. kfuse.stack(branches, head=..., strategy=strategy)) and loads any base model "
    "from its .keras file inside, or a functools.partial of such a function"
)


@dataclasses.dataclass
class RayFitResult:
    """What `fit_on_ray` returns.

    Attributes:
        model: the model `build_fn(None)` builds here, holding the trained weights.
        history: the per-epoch logs (`History.history`; losses are the cross-worker mean).
        num_workers: how many Ray workers trained it.
        replica_digests: a sha256 of each worker's final weights, by rank (all equal).
    """

    model: object
    history: dict
    num_workers: int
    replica_digests: list


def worker_dataset(
    x, y=None, batch_size=32, worker=0, num_workers=1, shuffle=False, seed=0, local_replicas=1
):
    """The `tf.data.Dataset` worker `worker` of `num_workers` trains on.

    Rows are cut into global batches of `batch_size` (in a seeded order when `shuffle`,
    reshuffled every epoch, the same order on every worker) and each batch into
    `num_workers * local_replicas` near-equal shares; the worker emits its
    `local_replicas` shares of each batch one after the other (its replicas take them
    in turn). A last batch with fewer rows than shares is skipped. With `num_workers=1`
    it is the plain batched data: the single-process run to compare with.
    """
    import tensorflow as tf

    if not 0 <= worker < num_workers:
        raise ValueError(
            f"worker={worker!r} must be in 0..{num_workers - 1} (num_workers={num_workers})"
        )
    data = x if y is None else (x, y)
    rows = len(next(iter(x.values())) if isinstance(x, dict) else x)
    shares = num_workers * local_replicas
    order = tf.data.Dataset.range(rows)
    if shuffle:
        order = order.shuffle(rows, seed=seed, reshuffle_each_iteration=True)

    def share(index, part):
        size = tf.shape(index, out_type=tf.int64)[0]
        rows_of_part = index[size * part // shares : size * (part + 1) // shares]
        return tf.nest.map_structure(lambda values: tf.gather(values, rows_of_part), data)

    def own_shares(index):
        parts = tf.data.Dataset.range(worker * local_replicas, (worker + 1) * local_replicas)
        return parts.map(lambda part: share(index, part))

    last = rows % batch_size
    kept = rows // batch_size + (1 if last >= shares else 0)  # `take` keeps the cardinality known
    batches = order.batch(batch_size).take(kept)
    options = tf.data.Options()  # each worker reads its own rows: no auto-sharding on top
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    shares_of_worker = batches.flat_map(own_shares)  # flat_map loses the count: say it again
    counted = shares_of_worker.apply(tf.data.experimental.assert_cardinality(kept * local_replicas))
    return counted.with_options(options)


def _distributed_dataset(strategy, data, config):
    """Each worker's shares as a distributed dataset Keras trains on as it is."""

    def per_worker(context):
        return worker_dataset(
            data["x"],
            data["y"],
            config["batch_size"],
            context.input_pipeline_id,
            context.num_input_pipelines,
            config["shuffle"],
            config["seed"],
            strategy.num_replicas_in_sync // context.num_input_pipelines,
        )

    return strategy.distribute_datasets_from_function(per_worker)


def fit_on_ray(
    build_fn,
    x,
    y=None,
    *,
    epochs=1,
    batch_size=32,
    shuffle=False,
    seed=0,
    num_workers=2,
    use_gpu=False,
    address=None,
    storage_path=None,
    fit_kwargs=None,
):
    """Train the model `build_fn(strategy)` builds on `num_workers` Ray workers
    (MultiWorkerMirroredStrategy, launched by Ray Train's TensorflowTrainer).

    Args:
        build_fn (Callable): `build_fn(strategy)` returns a compiled model; pass `strategy`
            to `kfuse.stack(..., strategy=strategy)`. Shipped to the workers, so it must
            pickle: a module-level function, not a closure over a live dataset or strategy.
        x, y: the training data (arrays or a dict of arrays by input name), held in
            Ray's object store once and read by every worker.
        epochs, batch_size, shuffle, seed: as for `Model.fit`; `batch_size` is the global
            batch, split among the workers (`worker_dataset`).
        num_workers (int): Ray Train workers, one replica each.
        use_gpu (bool): one GPU per worker (TensorFlow memory growth on).
        address (str | None): the Ray cluster ('ray://head:10001', 'auto'); None starts
            a local one. A connection already open in this process is used as it is.
        storage_path (str | None): where Ray Train keeps checkpoints; a folder every node
            reaches (NFS, s3://) on a multi-node cluster. None: a temporary folder.
        fit_kwargs (dict | None): more `Model.fit` arguments (callbacks must pickle).

    Returns:
        RayFitResult: the trained model (built here), history, worker count, digests.

    Example (not run here: it starts a Ray cluster):

    ```python
    import keras, kfuse

    def build(strategy):
        base = keras.saving.load_model("base.keras")
        return kfuse.stack([kfuse.Branch(base, name="a")], head=10, strategy=strategy)

    result = kfuse.distribute.fit_on_ray(build, x, y, epochs=3, batch_size=64, num_workers=2)
    result.model.predict(x_test)
    ```
    """
    require_ray(FEATURE, train=True)
    check_shippable(build_fn, "build_fn", _BUILD_HINT)
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 1:
        raise ValueError(f"num_workers must be a whole number >= 1; received {num_workers!r}")
    if batch_size < num_workers:
        raise ValueError(
            f"batch_size={batch_size} is smaller than num_workers={num_workers}: "
            "every worker needs at least one row of each global batch"
        )
    _check_data(x, y)
    owned = sorted(set(fit_kwargs or {}) & {"x", "y", "epochs", "batch_size", "shuffle", "verbose"})
    if owned:
        raise ValueError(
            f"fit_kwargs={sorted(fit_kwargs)}: pass {owned} to fit_on_ray itself (it builds "
            "each worker's batches and runs fit quietly)"
        )
    config = {
        "build_fn": build_fn,
        "epochs": epochs,
        "batch_size": batch_size,
        "shuffle": shuffle,
        "seed": seed,
        "use_gpu": use_gpu,
        "fit_kwargs": dict(fit_kwargs or {}),
    }
    storage = storage_path or tempfile.mkdtemp(prefix="kfuse-ray-")
    try:
        with ray_session(address, FEATURE) as ray:
            config["data"] = ray.put({"x": x, "y": y})
            checkpoint, history = _run_trainer(config, num_workers, use_gpu, storage)
            weights, digests = _read_replicas(checkpoint, num_workers)
    finally:
        if storage_path is None:
            shutil.rmtree(storage, ignore_errors=True)
    import keras

    keras.utils.set_random_seed(seed)
    model = build_fn(None)
    model.set_weights(weights)
    return RayFitResult(
        model=model, history=history, num_workers=num_workers, replica_digests=digests
    )


def _check_data(x, y):
    """NaN / inf and row counts, here and now (the workers' model checks cannot see a
    distributed dataset's rows)."""
    import numpy as np

    from kfuse.inputs import checks

    arrays = (
        {k: np.asarray(v) for k, v in x.items()} if isinstance(x, dict) else {"x": np.asarray(x)}
    )
    where = FEATURE
    checks.check_rows(arrays, None if y is None else np.asarray(y), where)
    checks.check_finite(arrays, where)
    checks.check_finite_labels(None if y is None else np.asarray(y), where)


def _run_trainer(config, num_workers, use_gpu, storage):
    """Run the workers; return (their checkpoint, history)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    trainer = TensorflowTrainer(
        _train_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(storage_path=storage, name=f"kfuse-fit-{uuid.uuid4().hex[:8]}"),
    )
    try:
        result = trainer.fit()
    except Exception as error:
        raise RuntimeError(f"{FEATURE}: training failed on the Ray workers: {error}") from error
    if result.checkpoint is None:
        raise RuntimeError(
            f"{FEATURE}: the Ray workers finished without saving weights ({result.error})"
        )
    return result.checkpoint, result.metrics["history"]


def _read_replicas(checkpoint, num_workers):
    """Every rank's weights from the checkpoint: (rank 0's arrays, digests), identical or raise."""
    import numpy as np

    with checkpoint.as_directory() as folder:
        replicas = []
        for rank in range(num_workers):
            with np.load(os.path.join(folder, f"weights_rank{rank}.npz")) as saved:
                replicas.append([saved[f"arr_{i}"] for i in range(len(saved.files))])
    digests = [_digest(arrays) for arrays in replicas]
    if len(set(digests)) > 1:
        raise RuntimeError(
            f"{FEATURE}: the {num_workers} replicas ended with different weights "
            f"(digests by rank: {digests}); the all-reduce did not keep them in step"
        )
    return replicas[0], digests


def _digest(arrays):
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(array.tobytes())
    return digest.hexdigest()


def _train_worker(config):
    """One Ray Train worker: TF_CONFIG is set; build, train, save this rank's weights."""
    import ray
    import ray.train

    if config["use_gpu"]:
        grow_gpu_memory()
    import keras
    import numpy as np

    from kfuse.distribute.strategy import get_strategy

    rank = ray.train.get_context().get_world_rank()
    strategy = get_strategy("multi_worker")
    data = ray.get(config["data"])
    keras.utils.set_random_seed(config["seed"])
    model = config["build_fn"](strategy)
    dataset = _distributed_dataset(strategy, data, config)
    history = model.fit(
        dataset, epochs=config["epochs"], verbose=0, shuffle=False, **config["fit_kwargs"]
    )
    with tempfile.TemporaryDirectory() as folder:
        np.savez(
            os.path.join(folder, f"weights_rank{rank}.npz"),
            *[keras.ops.convert_to_numpy(w) for w in model.weights],
        )
        logs = {key: [float(v) for v in values] for key, values in history.history.items()}
        ray.train.report({"history": logs}, checkpoint=ray.train.Checkpoint.from_directory(folder))
