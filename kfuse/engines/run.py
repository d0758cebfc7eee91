"""`run_jobs`: every job on the engine, as many at once as it takes; results handed back as
they come, the first failure raised (naming the job and its worker) with the rest cancelled."""

import time
import uuid

from kfuse.engines.backends import BACKENDS
from kfuse.engines.job import Done, Failure, JobError, on_worker, shippable

#: the seconds of the last `run_jobs` in this process (`jobs`, `wall`, `start`, `count`): the
#: per-job cost and the engine's overhead, for benchmarks and the scaling model
LAST_RUN = {}


def new_run_id():
    """A fresh id for one run's jobs (worker caches are kept per run)."""
    return uuid.uuid4().hex[:12]


def run_jobs(jobs, data, done, engine, failed=None, stats=None):
    """Run `jobs` on `engine` with the shared arrays `data`; `done(job, result)` as each finishes.

    Args:
        jobs: `kfuse.engines.job.Job`s, submitted in this order.
        data: name -> numpy array, shipped once per worker.
        done: called in this thread, once per job, in the order they finish.
        engine: a `kfuse.engines.Engine`.
        failed: `failed(job, failure) -> Exception` (the `Failure` names the worker); raised
            after the other jobs are cancelled. Default: `job.on_worker`.
        stats: a dict to fill with the seconds spent: `jobs` (inside the jobs, summed),
            `wall` (this call) and `start` (shipping the data, starting the pool).

    A job whose worker process dies is run again by the engine (Ray, Dask); one that raises is
    not (its error would come again).
    """
    jobs = list(jobs)
    if not jobs:
        return
    for job in jobs:
        shippable(job, job.where, getattr(job, "builder", None))
    failed = failed or on_worker
    start = time.perf_counter()
    backend = BACKENDS[engine.kind](engine, data)
    started = time.perf_counter()
    pending, queue, in_jobs = {}, list(reversed(jobs)), 0.0
    try:
        while queue or pending:
            while queue and (backend.window is None or len(pending) < backend.window):
                job = queue.pop()
                pending[backend.submit(job)] = job
            for future in backend.wait(pending):
                job = pending.pop(future)
                outcome = _outcome(backend, future, job)
                if isinstance(outcome, Failure):
                    raise failed(job, outcome)
                in_jobs += outcome.seconds
                done(job, outcome.result)
    except BaseException:
        backend.cancel(list(pending))
        raise
    finally:
        backend.close()
        LAST_RUN.clear()
        LAST_RUN.update(jobs=in_jobs, wall=time.perf_counter() - start, start=started - start, count=len(jobs))
        if stats is not None:
            stats.update(LAST_RUN)


def _outcome(backend, future, job):
    """The job's `Done` / `Failure`; a worker lost past the engine's retries is a `JobError`."""
    try:
        outcome = backend.result(future)
    except Exception as error:
        raise JobError(f"{job.where}: its worker was lost and the engine's retries ran out "
                       f"({type(error).__name__}: {error})") from error
    if not isinstance(outcome, (Done, Failure)):
        raise JobError(f"{job.where}: the engine returned {type(outcome).__name__}, not a job result")
    return outcome
