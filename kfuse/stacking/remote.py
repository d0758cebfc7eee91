"""The `Stacker`'s fold models and refits as shippable jobs (`kfuse.engines`): each worker
trains them exactly as `BaseFolds` trains them in this process (the same seeding, the same
traced epochs, one trace per base per worker) and sends back the trained variables and, for a
fold, its held-out meta-features and score."""

from dataclasses import dataclass

import keras
import numpy as np

from kfuse import engines
from kfuse.engines.job import Job
from kfuse.stacking import base_folds
from kfuse.stacking import base_training as bt
from kfuse.stacking.data import StackData
from kfuse.utils.quiet import quiet_tensorflow

Y, SAMPLE_WEIGHT = "__kfuse_y", "__kfuse_sample_weight"  # beside the inputs in the shipped data


@dataclass
class FoldResult:
    """What a fold job sends back: the model's variables, and for a fold its held-out
    meta-features and score (None for a refit)."""

    variables: list
    features: np.ndarray | None = None
    score: float | None = None


@dataclass
class FoldJob(Job):
    """One base trained on some rows: a fold model (`fold`, `test_rows` given) or the refit.

    Attributes:
        branch: the `kfuse.Branch` (a builder travels pickled by cloudpickle; a keras.Model as
            `.keras` bytes, Keras's own pickling).
        method, head, shapes: the base's stack method, the Stacker's head, the input shapes.
        seed: `base_folds.fold_seed(...)`, as the sequential run uses it.
        rows, fold, test_rows: the training rows (None: every row), the fold and its held-out rows.
    """

    branch: object = None
    method: str = "predict_proba"
    head: object = None
    shapes: dict | None = None
    seed: int = 0
    rows: np.ndarray | None = None
    fold: int | None = None
    test_rows: np.ndarray | None = None

    @property
    def builder(self):
        """The branch's builder function (None for a keras.Model base)."""
        return None if isinstance(self.branch.base, keras.Model) else self.branch.base

    def run(self, data):
        with quiet_tensorflow():
            return self._run(data)

    def _run(self, data):
        folds = _worker_folds(self, data)
        job = base_folds._Job(folds.trained[0], self.seed, self.rows, self.fold, self.test_rows)
        model = folds._fit(folds._prepare(job, group=1, threads_allowed=False))
        result = FoldResult([np.array(keras.ops.convert_to_numpy(v)) for v in model.variables])
        if self.fold is not None:
            result.features, result.score = folds._held_out(job.branch, model, self.test_rows)
        return result


_FOLDS = {}  # in a worker: (run id, branch name) -> the `BaseFolds` training that base here


def _worker_folds(job, data):
    """This worker's `BaseFolds` for the job's base, over the run's shipped `data` (one
    data set per run: its traced epoch and meta-feature model are kept for the run's next
    jobs of that base)."""
    key = (job.run_id, job.branch.name)
    if key not in _FOLDS:
        if not any(k[0] == job.run_id for k in _FOLDS):
            _FOLDS.clear()  # a new run: the last run's models go
        arrays = {k: v for k, v in data.items() if k not in (Y, SAMPLE_WEIGHT)}
        read = StackData(arrays, np.asarray(data[Y]), data.get(SAMPLE_WEIGHT), job.shapes)
        _FOLDS[key] = base_folds.BaseFolds([job.branch], {job.branch.name: job.method}, job.head, read,
                                           store=None, seed=0)
    return _FOLDS[key]


def model_of(folds, job, result):
    """The trained model of a finished job in this process: built as the worker built it,
    given the worker's variables."""
    keras.utils.set_random_seed(job.seed)
    model = bt.fresh_model(job.branch, folds.shapes, folds.head)
    bt.compile_base(model, job.branch, folds.head)
    for variable, value in zip(model.variables, result.variables, strict=True):
        variable.assign(value)
    return model


def run_on_engine(folds, jobs, done, engine, keep_models):
    """Train `jobs` (`base_folds._Job`s) on `engine`; `done(job, model, held)` as each comes
    back (`model` None where nothing keeps it: no work_dir and fold models not kept)."""
    run_id = engines.run.new_run_id()
    data = {**folds.data.arrays, Y: folds.data.y}
    if folds.data.sample_weight is not None:
        data[SAMPLE_WEIGHT] = folds.data.sample_weight
    sent = {}
    for job in jobs:
        what = "the refit on every row" if job.fold is None else f"fold {job.fold + 1}"
        fold_job = FoldJob(f"Stacker: training branch '{job.branch.name}' ({what})", run_id,
                           branch=job.branch, method=folds.methods[job.branch.name], head=folds.head,
                           shapes=folds.shapes, seed=job.seed, rows=job.rows, fold=job.fold,
                           test_rows=job.test_rows)
        sent[id(fold_job)] = (fold_job, job)

    def finished(fold_job, result):
        job = sent[id(fold_job)][1]
        keep = job.fold is None or keep_models or folds.store.enabled
        model = model_of(folds, job, result) if keep else None
        done(job, model, None if job.fold is None else (result.features, result.score))

    engines.run_jobs([s[0] for s in sent.values()], data, finished, engine, failed=engines.job.on_worker)
