"""Training several models at once in threads: the `n_jobs` of the `Stacker`.

Each model trains through one traced TensorFlow call per epoch (`kfuse.trainers.epoch_loop`), which
runs without the GIL, so a few small models training side by side keep the cores busier
than one does. Everything that draws from a global random state (building a model, seeding,
building a `SharedFit` worker) stays in the calling thread, in job order; the threads only
run the seeded, stateless-shuffled epochs. So the models are the ones a sequential run
trains, whatever the thread count. The pool is `kfuse.trainers.schedule.Scheduler`'s; `run`
is its form for callers that prepare each job with a callback.
"""

import os

from kfuse.trainers.jobs import LOOP, THREAD, FitJob
from kfuse.trainers.schedule import Scheduler, run_all


def resolve_n_jobs(n_jobs, where="Stacker"):
    """The number of threads: None -> 1, -1 -> every core, a positive int as it is."""
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(
            f"{where}: n_jobs must be None, -1 (every core) or a positive int; received {n_jobs!r}"
        )
    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


def named_error(error, where):
    """``error`` with ``where`` (the branch and fold a job trained) before its message, of
    the same type where that type takes one message (else a RuntimeError naming the type).

    Example:

    ```python
    from kfuse.trainers.threads import named_error
    print(named_error(ValueError("bad shape"), "branch 'cnn' (fold 2)"))  # branch 'cnn' (fold 2): bad shape
    ```
    """
    text = f"{where}: {error}"
    try:
        named = type(error)(text)
    except Exception:  # an exception type with other constructor arguments
        named = None
    if named is None or str(named) != text:
        named = RuntimeError(f"{where}: {type(error).__name__}: {error}")
    return named.with_traceback(error.__traceback__)


def run(jobs, prepare, fit, done, n_jobs):
    """Train every job, up to `n_jobs` at once (`kfuse.trainers.schedule.Scheduler`).

    Args:
        jobs: the jobs, in the order a sequential run takes them.
        prepare: `prepare(job) -> (state, in_thread)`, called in this thread, in job order.
        fit: `fit(job, state) -> model`, called in a pool thread where `in_thread`, else
            here after the pool is done.
        done: `done(job, model)`, called in this thread as each job finishes.
        n_jobs: threads (1: everything in this thread, in order).
    """

    def planned():
        for job in jobs:
            state, in_thread = prepare(job)
            yield FitJob(None, None, None, route=THREAD if in_thread else LOOP, tag=(job, state))

    scheduler = Scheduler(lambda job, out: done(job.tag[0], out), fit=lambda job: fit(*job.tag), n_jobs=n_jobs)
    run_all(planned(), scheduler)
