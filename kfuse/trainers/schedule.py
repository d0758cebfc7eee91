"""`Scheduler`: THE way kfuse trains many jobs: pairs, threads, or one at a time.

The Stacker's fold models and refits and every ensemble's members are `FitJob`s whose
route was decided when they were made (`kfuse.trainers.jobs.route`). The scheduler takes
them in order, as they are made:

- ``"together"`` jobs wait for `group` jobs of their `key`, then train side by side in one
  traced epoch (`kfuse.trainers.side_by_side.SideBySide`, its workers made by
  `make_worker`); a last job without a partner trains in that epoch with the other copies
  idle (`SideBySide.fit_one`: no trace of its own), and a group that cannot share
  (settings that differ, no group epoch traced yet) one job at a time;
- ``"thread"`` jobs train in a pool of `n_jobs` threads (a traced epoch runs without the
  GIL), at most `n_jobs` at once;
- the others train at once in this thread, or, while threads run, after them (`Model.fit`
  and progress output stay out of the pool).

Everything that draws from a global random state (building, seeding) stays with the
caller, in job order, so the models are those one at a time gives, bit for bit.
"""

import contextlib
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from kfuse.trainers import kept, side_by_side
from kfuse.trainers.jobs import THREAD, TOGETHER, fit_job


class Scheduler:
    """Train the jobs `add`ed to it; `done(job, result)` is called here as each finishes.

    Args:
        done: callable `(job, result)`; `result` is what `fit` returned (the job's model
            for a pair).
        fit: callable `(job) -> result` training one job alone; default `fit_job`.
        n_jobs: threads for ``"thread"`` jobs.
        group: jobs per side-by-side group.
        make_worker: callable `(job) -> callable` giving the maker of a compiled worker
            for the job's key (None: that key never trains side by side).
        failed: callable `(error, jobs) -> exception` naming the jobs a pair was training.

    Use it as a context manager (its threads end with the block): `finish()` trains what
    is still waiting.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.jobs import FitJob, route
    from kfuse.trainers.schedule import Scheduler

    x, y, settings = np.ones((40, 4), "float32"), np.zeros((40, 2), "float32"), {"epochs": 2, "batch_size": 8}

    def regressor():
        net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        net.compile("sgd", "mse")
        return net

    finished = []
    with Scheduler(lambda job, result: finished.append(job.tag), group=2,
                   make_worker=lambda job: regressor) as scheduler:
        for i in range(3):
            net = regressor()
            scheduler.add(FitJob(net, x, y, settings, seed=i, route=route(net, x, y, settings, group=2),
                                 key="dense", tag=i))
        scheduler.finish()
    sorted(finished)  # [0, 1, 2]: 0 and 1 side by side, then 2 (the other copy idle)
    ```
    """

    def __init__(self, done, fit=fit_job, n_jobs=1, group=1, make_worker=None, failed=None):
        self.done, self.fit, self.n_jobs, self.group = done, fit, int(n_jobs), int(group)
        self.make_worker, self.failed = make_worker, failed
        self._pending, self._together, self._running, self._later = {}, {}, {}, []
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if self._pool is not None:
            if error is not None:
                for future in self._running:
                    future.cancel()
            self._pool.shutdown(wait=True)
        return False

    def add(self, job):
        """Train `job` by its route (now, in a thread, or once its group is full)."""
        if job.route == TOGETHER and self.group > 1:
            pending = self._pending.setdefault(job.key, [])
            pending.append(job)
            if len(pending) == self.group:
                self._fit_group(self._pending.pop(job.key))
        elif job.route == THREAD and self.n_jobs > 1:
            self._submit(job)
        elif self.n_jobs > 1:
            self._later.append(job)
        else:
            self.done(job, self.fit(job))

    def finish(self):
        """Train what waits (groups without a partner, then the pool's jobs, then the rest);
        the side-by-side workers go to `kfuse.trainers.kept` for a later fit."""
        for key in list(self._pending):
            self._fit_group(self._pending.pop(key))
        while self._running:
            self._collect(wait(self._running, return_when=FIRST_COMPLETED).done)
        later, self._later = self._later, []
        for job in later:
            self.done(job, self.fit(job))
        together, self._together = self._together, {}
        for pair in together.values():
            if pair is not None and pair.workers:
                kept.give_back("side_by_side", pair, pair.workers[0])

    def _submit(self, job):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.n_jobs, thread_name_prefix="kfuse-fit")
        while len(self._running) >= self.n_jobs:
            self._collect(wait(self._running, return_when=FIRST_COMPLETED).done)
        self._running[self._pool.submit(self.fit, job)] = job

    def _collect(self, futures):
        for future in futures:
            self.done(self._running.pop(future), future.result())

    def _fit_group(self, jobs):
        if len(jobs) == 1 and self._fit_lone(jobs[0]):
            return
        together = self._side_by_side(jobs[0]) if len(jobs) > 1 else None
        models, settings = [j.model for j in jobs], [j.settings for j in jobs]
        if together is None or not together.fits(models, settings):
            for job in jobs:
                self.done(job, self.fit(job))
            return
        with self._naming(jobs):
            together.fit(models, [(j.x, j.y) for j in jobs], [j.seed for j in jobs], settings)
        for job in jobs:
            self.done(job, job.model)

    def _fit_lone(self, job):
        """Train a job without a partner in its key's group epoch traced before (no trace of
        its own); whether it trained there."""
        together = self._together.get(job.key)
        if together is None:
            return False
        with self._naming([job]):
            history = together.fit_one(job.model, (job.x, job.y), job.seed, job.settings)
        if history is None:
            return False
        self.done(job, job.model)
        return True

    @contextlib.contextmanager
    def _naming(self, jobs):
        """An error of a group's fit named by `failed` (the jobs it was training)."""
        try:
            yield
        except Exception as error:
            if self.failed is None:
                raise
            raise self.failed(error, jobs) from error

    def _side_by_side(self, job):
        """The `SideBySide` of the job's key, or None where it has no worker maker."""
        if job.key not in self._together:
            pair = kept.take("side_by_side", lambda one: one.trains(job.model))
            if pair is None:  # none kept from an earlier fit: a new one
                maker = self.make_worker(job) if self.make_worker is not None else None
                pair = None if maker is None else side_by_side.SideBySide(maker)
            self._together[job.key] = pair
        return self._together[job.key]


def run_all(jobs, scheduler):
    """`scheduler.add` every job of the iterable `jobs` (made lazily, in order), then
    `finish`; the scheduler's threads end here, finished or not."""
    with scheduler:
        for job in jobs:
            scheduler.add(job)
        scheduler.finish()
