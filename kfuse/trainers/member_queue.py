"""`MemberQueue`: independent members trained as they are built, two of one spec at a time.

Bagging's members do not depend on one another, so two members of one spec (one
architecture) can train side by side in ONE traced epoch (`kfuse.trainers.side_by_side`, the
lever the Stacker's fold models use): each copy runs its own `train_step` on its own
rows and shuffling, and TensorFlow's inter-op threads run the two at once. Every member
is the one training alone gives, bit for bit: it is built from its own seed, and its
shuffling seed is drawn right after, from the state that build left, where
`epoch_loop.fit_in_memory` would draw it (tested against one at a time).

A member that cannot share (settings that need `Model.fit`, callbacks, progress output,
validation data; a model whose compile settings do not copy) trains at once, alone,
through a `kfuse.trainers.shared_fit.FitPool` (one traced epoch per architecture). The grouping is
`kfuse.trainers.schedule.Scheduler`'s, as for the Stacker's folds.
"""

import numpy as np

from kfuse.trainers import side_by_side
from kfuse.trainers.jobs import KERAS
from kfuse.trainers.members import member_job
from kfuse.trainers.schedule import Scheduler
from kfuse.trainers.shared_fit import FitPool
from kfuse.trainers.worker import copy_compiled


class MemberQueue:
    """Train fresh members as they come; `done(index, model)` is called as each finishes.

    Args:
        done: callable `(index, model)`, called once per member when it is trained (pairs
            finish together, so not always in index order).
        group: members per traced epoch; default `side_by_side.group_size()` (2, or 1
            where TensorFlow runs one op at a time).

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.member_queue import MemberQueue

    specs = {"small": 4, "wide": 16}  # two architectures: members pair up within one spec
    x, y = np.ones((40, 4), "float32"), np.zeros(40, "int64")
    finished = {}
    queue = MemberQueue(lambda i, model: finished.update({i: model}))
    for i, spec in enumerate(["small", "wide", "small"]):
        keras.utils.set_random_seed(i)
        member = keras.Sequential([keras.Input((4,)), keras.layers.Dense(specs[spec]), keras.layers.Dense(2)])
        member.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        queue.add(i, spec, member, x, y, {"epochs": 2, "batch_size": 8})
    queue.finish()  # trains what is still queued (a spec's lone member)
    sorted(finished)  # [0, 1, 2]
    ```
    """

    def __init__(self, done, group=None):
        self.done = done
        self.group = side_by_side.group_size() if group is None else int(group)
        self.pool = FitPool()
        # `self.done` read when a job finishes: an engine's worker re-points it per job
        self._scheduler = Scheduler(lambda job, _: self.done(job.tag, job.model), group=self.group,
                                    make_worker=_worker_maker)

    def add(self, index, key, model, x, y, settings):
        """Queue member `index`, just built, to train on `(x, y)` with `settings` (its fit
        keyword arguments); `key` names its spec: members of one key may train together."""
        job = member_job(model, x, y, settings, pool=self.pool, group=self.group, key=key, tag=index)
        if job.seed is None and job.route != KERAS:
            job.seed = np.random.randint(2**31 - 1)  # as `fit_in_memory` draws it after the build
        self._scheduler.add(job)

    def finish(self):
        """Train what is still queued (a spec's last member without a partner); the
        workers go to `kfuse.trainers.kept` for the next fit."""
        self._scheduler.finish()
        self.pool.release()


def _worker_maker(job):
    """The maker of compiled copies of the job's model (the first made now), or None where
    its compile settings do not copy."""
    first = copy_compiled(job.model)
    if first is None:
        return None
    made = [first]
    return lambda: made.pop() if made else copy_compiled(job.model)
