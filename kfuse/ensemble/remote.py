"""Bagging's (and voting's) members as shippable jobs (`kfuse.engines`): each worker builds
a member from its spec and seed and trains it exactly as `MemberQueue` trains it alone in this
process (its shuffling seed drawn after the build, one traced epoch per architecture per
worker); the trained variables come back."""

from dataclasses import dataclass

import keras
import numpy as np

from kfuse import engines
from kfuse.engines.job import Job
from kfuse.ensemble import base
from kfuse.inputs.selection import take
from kfuse.trainers.member_queue import MemberQueue
from kfuse.utils.quiet import quiet_tensorflow

X, Y = "__kfuse_x", "__kfuse_y"  # a bare x and the targets in the shipped data


@dataclass
class MemberJob(Job):
    """One member: built from `spec` (a builder, pickled by cloudpickle, or a keras.Model,
    pickled as `.keras` bytes) under `seed`, trained on `rows` with `settings`."""

    spec: object = None
    index: int = 0
    key: int = 0
    seed: int = 0
    task: str = "classification"
    classes: np.ndarray | None = None
    settings: dict | None = None
    rows: np.ndarray | None = None
    who: str = "kfuse"

    @property
    def builder(self):
        """The member's builder function (None for a keras.Model spec)."""
        return None if isinstance(self.spec, keras.Model) else self.spec

    def run(self, data):
        with quiet_tensorflow():
            return self._run(data)

    def _run(self, data):
        x = data[X] if X in data else {k: v for k, v in data.items() if k != Y}
        trained = {}
        queue = _worker_queue(self.run_id, trained)
        model = base.new_member(self.spec, self.seed, self.task, self.who, self.index, self.classes)
        queue.add(self.index, self.key, model, take(x, self.rows), np.asarray(data[Y])[self.rows],
                  self.settings or {})
        queue.finish()
        return [np.array(keras.ops.convert_to_numpy(v)) for v in trained.pop(self.index).variables]


_QUEUES = {}  # in a worker: run id -> its `MemberQueue` (one traced epoch per architecture)


def _worker_queue(run_id, trained):
    if run_id not in _QUEUES:
        _QUEUES.clear()
        _QUEUES[run_id] = MemberQueue(None, group=1)
    queue = _QUEUES[run_id]
    queue.done = lambda i, model: trained.update({i: model})
    return queue


def fit_members(ensemble, specs, samples, x, target, store, done, engine, settings):
    """Train the members not in `store` on `engine`; `done(index, model)` as each comes back;
    `settings`: the ensemble's resolved fit settings (`settings.member(i)`: member i's)."""
    who, run_id = ensemble._who(), engines.run.new_run_id()
    data = dict(x) if isinstance(x, dict) else {X: x}  # numpy: checked by `BaseEnsemble.fit`
    data[Y] = np.asarray(target)
    jobs = [MemberJob(f"{who}: member_{i}", run_id, spec=specs[i % len(specs)], index=i, key=i % len(specs),
                      seed=ensemble._seed(i), task=ensemble.task, classes=ensemble._classes(),
                      settings=settings.member(i), rows=rows, who=who)
            for i, rows in enumerate(samples) if not store.has(base.member(i))]

    def finished(job, variables):
        model = base.new_member(job.spec, job.seed, job.task, who, job.index, job.classes)
        for variable, value in zip(model.variables, variables, strict=True):
            variable.assign(value)
        done(job.index, model)

    engines.run_jobs(jobs, data, finished, engine)
