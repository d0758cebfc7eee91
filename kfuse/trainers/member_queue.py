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
through a `kfuse.trainers.shared_fit.FitPool` (one traced epoch per architecture).
"""

import numpy as np

from kfuse.trainers import epoch_loop, side_by_side
from kfuse.trainers.shared_fit import FitPool, copy_compiled


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

    def build():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    x, y = np.ones((40, 4), "float32"), np.zeros(40, "int64")
    finished = {}
    queue = MemberQueue(lambda i, model: finished.update({i: model}))
    for i in range(3):
        keras.utils.set_random_seed(i)
        queue.add(i, "spec_0", build(), x, y, {"epochs": 2, "batch_size": 8})
    queue.finish()
    sorted(finished)  # [0, 1, 2]
    ```
    """

    def __init__(self, done, group=None, fit_alone=None):
        self.done = done
        self.fit_alone = fit_alone
        self.group = side_by_side.group_size() if group is None else int(group)
        self.pool = FitPool()
        self._pending = {}
        self._together = {}

    def add(self, index, key, model, x, y, settings):
        """Queue member `index`, just built, to train on `(x, y)` with `settings` (its fit
        keyword arguments); `key` names its spec: members of one key may train together."""
        settings = dict(settings)
        seed = settings.pop("seed", None)
        if seed is None and epoch_loop.supports(model, x, y, settings):
            seed = np.random.randint(2**31 - 1)  # as `fit_in_memory` draws it after the build
        if self.group < 2 or seed is None or not side_by_side.groupable(model, x, y, settings):
            self._alone(index, model, x, y, settings, seed)
            return
        queue = self._pending.setdefault(key, [])
        queue.append((index, model, x, y, settings, seed))
        if len(queue) == self.group:
            self._fit(key, self._pending.pop(key))

    def finish(self):
        """Train what is still queued (a spec's last member without a partner)."""
        for key in list(self._pending):
            self._fit(key, self._pending.pop(key))

    def _alone(self, index, model, x, y, settings, seed):
        if seed is not None:
            settings = dict(settings, seed=seed)
        if self.fit_alone is None:
            self.pool.fit(model, x, y, **{"verbose": 0, **settings})
        else:
            self.fit_alone(model, x, y, settings, pool=self.pool)
        self.done(index, model)

    def _fit(self, key, queue):
        together = self._side_by_side(key, queue[0][1]) if len(queue) > 1 else None
        models = [entry[1] for entry in queue]
        settings = [dict(entry[4], verbose=0) for entry in queue]
        if together is None or not together.fits(models, settings):
            for entry in queue:
                self._alone(*entry)
            return
        together.fit(models, [(entry[2], entry[3]) for entry in queue], [entry[5] for entry in queue], settings)
        for entry in queue:
            self.done(entry[0], entry[1])

    def _side_by_side(self, key, first):
        """The `SideBySide` of spec `key` (its workers are compiled copies of `first`), or
        None where `first`'s compile settings do not copy."""
        if key not in self._together:
            worker = copy_compiled(first)
            made = [] if worker is None else [worker]
            self._together[key] = None if worker is None else side_by_side.SideBySide(
                lambda: made.pop() if made else copy_compiled(first))
        return self._together[key]
