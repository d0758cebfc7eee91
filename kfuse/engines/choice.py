"""Which engine runs the independent fits: read from `joblib.parallel_config`, as scikit-learn
reads it, or set with `use(...)`, which also says how to install a missing engine."""

import contextlib
import difflib
import os
from dataclasses import dataclass, field

KINDS = ("threads", "processes", "ray", "dask")
INSTALL = {
    "ray": 'pip install "kfuse[ray]"  (or: pip install "ray[default]")',
    "dask": 'pip install "kfuse[dask]"  (or: pip install "dask[distributed]")',
}


@dataclass
class Engine:
    """The engine of one run of independent fits.

    Attributes:
        kind: "processes" (local loky processes), "ray" or "dask".
        n_jobs: jobs running at once (None or -1: as many as the engine's workers take).
        client: the `distributed.Client` (Dask).
        remote_args: Ray task options given as `parallel_config(ray_remote_args=...)`, e.g.
            `{"num_gpus": 1}` (they override kfuse's own, such as `max_retries`).
        retries: how often a job whose worker died is run again (Ray `max_retries`; Dask
            reschedules a dead worker's tasks by itself, `distributed.scheduler.allowed-failures`).
    """

    kind: str
    n_jobs: int | None = None
    client: object = None
    remote_args: dict = field(default_factory=dict)
    retries: int = 3

    def workers(self):
        """Jobs at once on local processes (n_jobs; None or -1: every core)."""
        if self.n_jobs is None or self.n_jobs < 0:
            return os.cpu_count() or 1
        return max(1, int(self.n_jobs))


def missing(kind, error=None):
    """The ImportError for an engine that is not installed, with the command that installs it."""
    return ImportError(f"kfuse: the {kind!r} engine is not installed here ({error}); install it with: {INSTALL[kind]}")


def _joblib_config():
    """joblib's active `parallel_config` (None outside one): joblib keeps it in the private
    thread-local `joblib.parallel._backend` (its `get_active_backend` cannot tell a default
    from a chosen backend)."""
    import joblib.parallel

    config = getattr(joblib.parallel._backend, "config", None)
    if config is None or config["backend"] is joblib.parallel.default_parallel_config["backend"]:
        return None
    return config


def active_engine(who="kfuse"):
    """The `Engine` chosen with `joblib.parallel_config(backend=...)`, or None (threads in this
    process: today's `n_jobs`). `parallel_config(backend="threading")` is also None.

    Example:

    ```python
    import joblib
    from kfuse.engines import active_engine

    active_engine()  # None: the estimator's own threads
    with joblib.parallel_config(backend="loky", n_jobs=2):
        active_engine().kind  # 'processes'
    ```
    """
    config = _joblib_config()
    if config is None:
        return None
    backend = config["backend"]
    n_jobs = config["n_jobs"]
    n_jobs = None if n_jobs is _default("n_jobs") else n_jobs
    name = type(backend).__name__
    if name in ("ThreadingBackend", "SequentialBackend"):
        return None
    if name in ("LokyBackend", "MultiprocessingBackend"):
        return Engine("processes", n_jobs)
    if name == "RayBackend":
        return Engine("ray", n_jobs, remote_args=dict(getattr(backend, "ray_remote_args", None) or {}))
    if name == "DaskDistributedBackend":
        return Engine("dask", n_jobs, client=backend.client)
    raise ValueError(
        f"{who}: joblib backend {name} is not an engine kfuse runs fits on; use "
        "parallel_config(backend=...) with 'threading', 'loky', 'ray' (after "
        "ray.util.joblib.register_ray()) or 'dask' (with a distributed.Client)"
    )


def _default(key):
    import joblib.parallel

    return joblib.parallel.default_parallel_config[key]


def use(kind, n_jobs=None, address=None, **options):
    """A `joblib.parallel_config` context that runs kfuse's independent fits on `kind`:
    "threads", "processes", "ray" or "dask" (Ray's joblib backend registered, a Dask client
    connected to `address` or the current one). A missing engine names its install command.

    Args:
        kind: the engine.
        n_jobs: jobs at once (None: every worker the engine has).
        address: a Ray cluster (`ray.init(address=...)`) or Dask scheduler address; None: the
            running one, else a local one (Ray), or the current `distributed.Client` (Dask).
        **options: more `parallel_config` options (`ray_remote_args={"num_gpus": 1}`, ...),
            or for Dask `timeout` (seconds to reach the scheduler).

    Example:

    ```python
    from kfuse.engines import use

    with use("processes", n_jobs=2) as config:
        pass  # stacker.fit(x, y) here trains its folds in 2 local processes
    ```
    """
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), KINDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"kfuse.engines.use: unknown engine {kind!r}.{hint} Choose one of {list(KINDS)}")
    import joblib

    if kind == "threads":
        return joblib.parallel_config(backend="threading", n_jobs=n_jobs, **options)
    if kind == "processes":
        return joblib.parallel_config(backend="loky", n_jobs=n_jobs, **options)
    if kind == "ray":
        return _use_ray(n_jobs, address, options)
    return _use_dask(n_jobs, address, options)


def _use_ray(n_jobs, address, options):
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError as error:
        raise missing("ray", error) from error
    import joblib

    if address is not None and not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False)
        except Exception as error:
            raise ConnectionError(f"kfuse: the Ray cluster at {address!r} cannot be reached ({error}); "
                                  "start it (ray start --head) or give the address it prints") from error
    register_ray()
    return joblib.parallel_config(backend="ray", n_jobs=-1 if n_jobs is None else n_jobs, **options)


def _use_dask(n_jobs, address, options):
    try:
        import distributed
    except ImportError as error:
        raise missing("dask", error) from error
    import joblib

    timeout = options.pop("timeout", 10)
    stack = contextlib.ExitStack()
    if address is not None:
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except Exception as error:
            raise ConnectionError(f"kfuse: the Dask scheduler at {address!r} cannot be reached within "
                                  f"{timeout} s ({type(error).__name__}: {error}); start it (dask scheduler) "
                                  "or give the address it prints") from error
        stack.callback(client.close)
    else:
        try:
            client = distributed.get_client()
        except ValueError as error:
            raise ValueError("kfuse: the 'dask' engine needs a Dask cluster: start one with "
                             "distributed.Client(LocalCluster(...)) or Client('tcp://scheduler:8786'), "
                             "or pass use('dask', address=...)") from error
    stack.enter_context(joblib.parallel_config(backend="dask", n_jobs=n_jobs or -1, client=client, **options))
    return stack
