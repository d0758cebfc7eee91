"""`Trainers`: one compiled trainer network per member spec, reset for every member.

Keras traces a model's train and predict functions once per model; boosting trains its
members one after another, so kfuse trains them all on one network per spec: member i is
built by `new_member(spec, seed_i)` and trained in the spec's worker
(`kfuse.trainers.worker.Worker`: its weights, BatchNormalization statistics and seed
state, the optimizer back to untrained), then kept as a copy (`copy_network`).
"""

from kfuse.ensemble.base import new_member
from kfuse.trainers.worker import Worker


class Trainers:
    """One compiled trainer network per spec; `fresh(index, seed)` gives member `index`'s.

    Args:
        specs: the member specs (member i uses spec i modulo their number).
        task: "classification" or "regression" (the default loss).
        who: the estimator's name, for errors.
        loss: a loss every member is compiled with instead of its own (None: its own).
    """

    def __init__(self, specs, task, who, loss=None):
        self.specs, self.task, self.who, self.loss = specs, task, who, loss
        self.workers = {}

    def fresh(self, index, seed):
        """The trainer network holding member `index`'s fresh variables (built from `seed`)."""
        key = index % len(self.specs)
        model = new_member(self.specs[key], seed, self.task, self.who, index)
        if self.loss is not None:
            model.compile(optimizer=model.optimizer, loss=self.loss, jit_compile=False)
        if key not in self.workers:
            self.workers[key] = Worker(model)  # the first member's network is the trainer
            return model
        worker = self.workers[key]
        worker.load(model)
        return worker.model
