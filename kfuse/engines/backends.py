"""The engines' submit / wait / cancel, one small class each; each ships the run's data once
per worker and imports its engine only when used."""

import os
import shutil
import tempfile

import numpy as np

from kfuse.engines.choice import missing
from kfuse.engines.job import execute

_DATA = {}  # in a local worker process: run_id -> the run's arrays (memory-mapped)


def _local_execute(job, folder):
    """`execute` in a local worker: the run's arrays memory-mapped from `folder`, once per process."""
    data = _DATA.get(job.run_id)
    if data is None:
        _DATA.clear()  # one run's arrays at a time
        data = _DATA[job.run_id] = {name[:-4]: _load(os.path.join(folder, name))
                                    for name in sorted(os.listdir(folder)) if name.endswith(".npy")}
    return execute(job, data)


def _load(file):
    """An array saved by `Processes`, memory-mapped (Python objects, such as strings of
    object dtype, cannot be: read whole)."""
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except ValueError:  # object dtype: our own file, written by `Processes`
        return np.load(file, allow_pickle=True)


class Processes:
    """Local loky processes (spawned, reused across runs); the data in `.npy` files every
    worker memory-maps."""

    def __init__(self, engine, data):
        from joblib.externals.loky import get_reusable_executor

        self.folder = tempfile.mkdtemp(prefix="kfuse-engine-")
        for name, value in data.items():
            np.save(os.path.join(self.folder, f"{name}.npy"), np.ascontiguousarray(value), allow_pickle=True)
        self.pool = get_reusable_executor(max_workers=engine.workers(), reuse=True)
        self.window = engine.workers()

    def submit(self, job):
        return self.pool.submit(_local_execute, job, self.folder)

    def wait(self, futures):
        from concurrent.futures import FIRST_COMPLETED, wait

        return wait(futures, return_when=FIRST_COMPLETED).done

    @staticmethod
    def result(future):
        return future.result()

    def cancel(self, futures):
        for future in futures:
            future.cancel()

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)


class Ray:
    """Ray tasks; the data `ray.put` once (each node's object store holds one copy); a job
    asking for a GPU gets `num_gpus` and a worker of its own (`max_calls=1` frees the GPU)."""

    def __init__(self, engine, data):
        try:
            import ray
        except ImportError as error:
            raise missing("ray", error) from error
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            try:
                ray.init(include_dashboard=False, log_to_driver=False)
            except Exception as error:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
                raise ConnectionError(f"kfuse: {where} cannot be reached or started ({error}); start it "
                                      "(ray start --head) or call ray.init(address=...) first") from error
        self.ray, self.engine = ray, engine
        self.cluster_gpus = ray.cluster_resources().get("GPU", 0)
        self.data = ray.put(data)
        self.task = ray.remote(execute)
        self.window = engine.n_jobs if engine.n_jobs and engine.n_jobs > 0 else None

    def options(self, job):
        """The Ray task options of `job`: one CPU, its GPUs, retries for a dead worker."""
        options = {"num_cpus": 1, "max_retries": self.engine.retries, "retry_exceptions": False}
        gpus = job.gpus if job.gpus is not None else (1 if self.cluster_gpus else 0)
        if gpus:
            options.update(num_gpus=gpus, max_calls=1)
        return {**options, **self.engine.remote_args}

    def submit(self, job):
        return self.task.options(**self.options(job)).remote(job, self.data)

    def wait(self, futures):
        done, _ = self.ray.wait(list(futures), num_returns=1)
        return done

    def result(self, future):
        return self.ray.get(future)

    def cancel(self, futures):
        for future in futures:
            self.ray.cancel(future, force=True)

    def close(self):
        self.data = None


class Dask:
    """Dask tasks on the client's cluster; the data scattered once to every worker; a job
    asking for a GPU declares the worker resource `GPU` (start workers with
    `--resources GPU=1`)."""

    def __init__(self, engine, data):
        try:
            import distributed
        except ImportError as error:
            raise missing("dask", error) from error
        client = engine.client
        if client is None or client.status != "running":
            address = getattr(getattr(client, "scheduler", None), "address", None)
            raise ConnectionError(
                f"kfuse: the Dask client {'of ' + repr(address) if address else ''} is not connected "
                f"(status {getattr(client, 'status', None)!r}); its cluster cannot be reached. Start the "
                "cluster and connect a new distributed.Client before fitting"
            )
        self.distributed, self.client = distributed, client
        workers = client.scheduler_info().get("workers", {}).values()
        self.cluster_gpus = any(w.get("resources", {}).get("GPU") for w in workers)
        self.data = client.scatter([data], broadcast=True)[0]
        self.window = engine.n_jobs if engine.n_jobs and engine.n_jobs > 0 else None
        self.count = 0

    def resources(self, job):
        """The Dask worker resources `job` asks for (None: any worker)."""
        gpus = job.gpus if job.gpus is not None else (1 if self.cluster_gpus else 0)
        return {"GPU": gpus} if gpus else None

    def submit(self, job):
        self.count += 1
        return self.client.submit(execute, job, self.data, pure=False, resources=self.resources(job),
                                  key=f"kfuse-{job.run_id}-{self.count}")

    def wait(self, futures):
        return self.distributed.wait(list(futures), return_when="FIRST_COMPLETED").done

    @staticmethod
    def result(future):
        return future.result()

    def cancel(self, futures):
        if futures:
            self.client.cancel(list(futures))

    def close(self):
        self.client.cancel([self.data])


BACKENDS = {"processes": Processes, "ray": Ray, "dask": Dask}
