"""What travels to a worker: a `Job` (a self-contained dataclass) and, back, its result or a
`Failure` naming the job and the worker."""

import os
import random
import socket
import threading
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass

import keras


@dataclass
class Job(ABC):
    """One independent fit. Subclasses (`kfuse.stacking.remote.FoldJob`,
    `kfuse.ensemble.remote.MemberJob`) hold what to build, the fit settings, the seed and the
    rows, and implement `run(data) -> result`, where `data` is the run's shared arrays (a
    dict of numpy arrays, shipped once per worker).

    Attributes:
        where: what the job is, for messages ("branch 'cnn' (fold 2)", "member_3").
        run_id: the id of the run it belongs to (worker caches are per run).
        gpus: GPUs the job asks the engine for; None: one where the engine's cluster has
            GPUs, none where it has not.
    """

    where: str
    run_id: str
    gpus: float | None = None

    @abstractmethod
    def run(self, data):
        """Build, train and return this job's result from the run's shared `data`."""


@dataclass
class Failure:
    """A job that raised on a worker: the error (pickled as text too: a user's exception type
    may not unpickle on the driver) and where it ran."""

    where: str
    worker: str
    error: BaseException | None
    kind: str
    message: str
    trace: str


@dataclass
class Done:
    """A job's result, the worker that computed it and its seconds there."""

    result: object
    worker: str
    seconds: float = 0.0


class JobError(RuntimeError):
    """A job failed on a worker; the message names the job and the worker."""


def worker_name():
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


_READY = []
_JOBS = threading.local()  # `rng`: the Python random generator of a thread that runs jobs
RANDOM_FUNCTIONS = ("seed", "getstate", "setstate", "random", "uniform", "randint", "randrange", "choice",
                    "choices", "shuffle", "sample", "getrandbits", "randbytes", "gauss", "normalvariate",
                    "triangular", "expovariate", "betavariate", "gammavariate", "lognormvariate",
                    "vonmisesvariate", "paretovariate", "weibullvariate")


def own_python_random():
    """Give each thread that runs jobs a Python `random` generator of its own.

    Keras draws every initializer's and seed generator's seed from Python's global `random`
    (`keras.utils.set_random_seed` seeds it), and an engine's worker runs other threads that
    draw from it too (Dask's event loop: retry and heartbeat jitter), so a model built in a
    worker could get other initial weights than the same build in the driver. The module's
    functions are replaced, in worker processes only, by ones that draw from the job
    thread's generator in a job thread and from the shared one elsewhere.
    """
    shared = {name: getattr(random, name) for name in RANDOM_FUNCTIONS if hasattr(random, name)}

    def dispatch(name):
        def draw(*args, **kwargs):
            rng = getattr(_JOBS, "rng", None)
            return getattr(rng, name)(*args, **kwargs) if rng is not None else shared[name](*args, **kwargs)

        draw.__name__ = draw.__qualname__ = name
        return draw

    for name in shared:
        setattr(random, name, dispatch(name))


def prepare_worker():
    """In a worker, before a job: the job thread draws Python random numbers from a generator
    of its own (`own_python_random`), and, once per process, TensorFlow allocates GPU memory
    as it needs it (several jobs of a worker, or workers, may share a GPU)."""
    if getattr(_JOBS, "rng", None) is None:
        _JOBS.rng = random.Random()
    if _READY:
        return
    own_python_random()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # already initialised by an earlier job of this process
                pass
    _READY.append(True)


def execute(job, data):
    """Run `job` in this (worker) process: a `Done`, or a `Failure` (never raised: an engine
    must not retry a job whose own code failed; it retries jobs whose worker died)."""
    prepare_worker()
    start = time.perf_counter()
    try:
        result = job.run(data)
    except Exception as error:  # returned, named, to the driver
        kind, message, trace = type(error).__name__, str(error), traceback.format_exc()
        try:
            import cloudpickle

            cloudpickle.loads(cloudpickle.dumps(error))
        except Exception:  # a user's exception type that does not travel: its text does
            error = None
        return Failure(job.where, worker_name(), error, kind, message, trace)
    return Done(result, worker_name(), time.perf_counter() - start)


def live_layers(builder):
    """Names of the live Keras layers or models a builder function refers to (closure cells
    and module globals it names): in a worker each job would get its own copy of them."""
    if not callable(builder) or isinstance(builder, keras.layers.Layer) or not hasattr(builder, "__code__"):
        return []
    code, found = builder.__code__, []
    cells = zip(code.co_freevars, [c.cell_contents for c in builder.__closure__ or ()], strict=False)
    named = [(n, builder.__globals__[n]) for n in code.co_names if n in getattr(builder, "__globals__", {})]
    for name, value in [*cells, *named]:
        if isinstance(value, keras.layers.Layer):
            found.append(name)
    return found


def shippable(job, what, builder=None):
    """Raise a TypeError naming `what` when `job` cannot be pickled for another process, or
    when its `builder` uses a live Keras model (the same object in every fit here, a copy per
    job on a worker: the results would differ)."""
    import cloudpickle

    live = live_layers(builder)
    if live:
        raise TypeError(
            f"{what}: the builder uses the live Keras model or layer {live} built outside it. In this "
            "process every fit calls that one object (its weights shared and trained by each fit); on "
            "a worker each job would get a copy. Pass the model itself (a fresh copy per fit), or a "
            "top-level function that builds new layers inside it"
        )
    try:
        return len(cloudpickle.dumps(job))
    except Exception as error:
        raise TypeError(
            f"{what} cannot be shipped to a worker process ({type(error).__name__}: {error}). Pass a "
            "top-level function that builds the network (it is pickled by name), a keras.Model, or a "
            "'.keras' path; not a function holding locks, open files, sessions or live TensorFlow objects"
        ) from error


def on_worker(job, failure):
    """The error of a `Failure`, naming the job and the worker: of the job's own error type
    where that type takes one message (so `except ValueError` still catches a ValueError),
    else a `JobError`."""
    text = failure.message
    if text.startswith(failure.where) and " failed: " in text:  # the job named itself
        text = text.replace(" failed: ", f" failed on worker {failure.worker}: ", 1)
    else:
        text = f"{failure.where} failed on worker {failure.worker}: {failure.kind}: {text}"
    error = failure.error
    try:
        named = type(error)(text) if error is not None else None
    except Exception:  # an exception type with other constructor arguments
        named = None
    if named is None or str(named) != text:
        named = JobError(text)
    return named
