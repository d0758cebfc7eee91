"""`BaseFolds`: each trainable base trained out-of-fold (and refit), for the `Stacker`.

The K fold models of one base train one after another in one worker's variables
(`kfuse.trainers.shared_fit.SharedFit`: one traced training function per base), each fold is scored
from its meta-features, and the meta-feature model is built once per base and given each fold
model's weights (one predict trace per base). Resumable: every finished fold and refit is in
the `WorkDir`.
"""

import contextlib
import dataclasses

import keras
import numpy as np

from kfuse import engines
from kfuse.branches.branch import Branch
from kfuse.stacking import base_training as bt
from kfuse.stacking.averaging import fold_average_model
from kfuse.trainers import jobs as fit_jobs
from kfuse.trainers import side_by_side, threads
from kfuse.trainers.schedule import Scheduler, run_all
from kfuse.trainers.shared_fit import SharedFit


@dataclasses.dataclass(eq=False)
class _Job:
    """One model to train: ``branch`` on ``rows`` (None: every row, the refit) from ``seed``;
    a fold's job also names its fold and held-out rows. Hashed by identity. Its `FitJob`
    (``_prepare``) carries it as ``tag``."""

    branch: object
    seed: int
    rows: object = None
    fold: int | None = None
    test_rows: object = None


@dataclasses.dataclass
class BaseResult:
    """What `Stacker._train_bases` hands on: `oof` (branch name -> out-of-fold
    meta-features) and `finals` (branch name -> the frozen branch of a trained base in
    the final graph: its refit, or the average of its fold models)."""

    oof: dict
    finals: dict


def _failed(error, jobs):
    """``error`` naming the branch and the folds (or refit) its `FitJob`s were training."""
    jobs = [j.tag for j in jobs]
    what = ", ".join("the refit on every row" if j.fold is None else f"fold {j.fold + 1}"
                     for j in jobs)
    return threads.named_error(error, f"Stacker: training branch '{jobs[0].branch.name}' "
                                      f"({what}) failed")


def _layout(weights):
    """Each weight's own name (its path without the layers above it) and shape, in order."""
    return [(v.path.rsplit("/", 1)[-1], tuple(v.shape)) for v in weights]


def fold_seed(seed, fold, index):
    """The seed of base ``index`` in fold ``fold`` (refit: fold 10,000; frozen builds: 999)."""
    return seed * 100_003 + fold * 101 + index


class BaseFolds:
    """Out-of-fold training of the ``trained`` branches of one `Stacker.fit`.

    Args:
        trained: the branches trained here (fresh callables or models to re-initialise).
        methods: branch name -> stack method (``predict_proba``, ``logits``, ``features``...).
        head: the `kfuse.layers.heads` head every base is trained under.
        data: the fit's `kfuse.stacking.data.StackData` (arrays, labels, row weights and
            input shapes), read once by the Stacker: every fold and refit takes its rows.
        store: the `WorkDir` holding finished folds and refits.
        seed: the Stacker's resolved seed; ``strategy``: as the Stacker's.
        progress: a `keras.utils.Progbar` advanced once per trained model.
        n_jobs: models trained at once, in threads (`kfuse.trainers.threads`); 1 under a
            strategy.
    """

    def __init__(self, trained, methods, head, data, store, seed, strategy=None, progress=None, n_jobs=1):
        self.trained, self.methods, self.head, self.data = trained, methods, head, data
        self.shapes = data.shapes
        self.store, self.seed, self.strategy, self.progress = store, seed, strategy, progress
        self.n_jobs = n_jobs if strategy is None else 1  # a strategy trains through Model.fit
        # one traced training function per base, shared by its fold models and refit
        self.shared = {b.name: SharedFit(self._worker_maker(b)) for b in trained}
        # threads each take an idle one (a base's first is `shared`; more where folds of one
        # base train at once)
        self._idle = {b.name: [self.shared[b.name]] for b in trained}
        self._lent = {}
        self._feature_models = {}
        self._side_by_side = {}  # base name -> its `SideBySide` (n_jobs=1)
        self._refits = {}
        self.base_models = {}

    def run(self, plan, keep_fold_models, refit=False):
        """``(oof, fold_models, scores)``: out-of-fold meta-features per base (mean over the
        folds that hold a row out), the fold models (when ``keep_fold_models``), and each
        fold's score. With ``refit``, the refits train here too, in the same queue as the
        folds, where models train several at once (``n_jobs > 1``: no thread idles while
        the last folds finish; ``n_jobs=1``: a refit trains side by side with a fold)."""
        finished, jobs = {}, []
        for k, (train_rows, test_rows) in enumerate(plan.splits):
            for i, b in enumerate(self.trained):
                if self.store.has_fold(k, b.name):
                    finished[(k, b.name)] = self.store.load_fold(k, b.name, need_model=keep_fold_models)
                    self._advance("fold", k + 1)
                else:
                    jobs.append(_Job(b, fold_seed(self.seed, k, i), train_rows, k, test_rows))
        # an engine picked with joblib.parallel_config (processes, Ray, Dask): `kfuse.engines`
        engine = engines.active_engine("Stacker") if self.strategy is None else None
        group = side_by_side.group_size() if self.n_jobs == 1 and self.strategy is None and engine is None else 1
        if refit and (self.n_jobs > 1 or group > 1 or engine is not None):
            jobs += [_Job(b, fold_seed(self.seed, 10_000, i)) for i, b in enumerate(self.trained)
                     if not self.store.has_refit(b.name)]

        def finish(job, model, held=None):  # held: (meta-features, score) computed by an engine's worker
            self._give_back(job)
            if job.fold is None:
                self.store.save_refit(job.branch.name, model)
                self._refits[job.branch.name] = model
                return
            feats, fold_score = held or self._held_out(job.branch, model, job.test_rows)
            self.store.save_fold(job.fold, job.branch.name, model, feats, fold_score)
            finished[(job.fold, job.branch.name)] = (model if keep_fold_models else None, feats, fold_score)
            self._advance("fold", job.fold + 1)

        if engine is not None:
            from kfuse.stacking import remote

            remote.run_on_engine(self, jobs, finish, engine, keep_fold_models)
            return self._out_of_fold(plan, finished, keep_fold_models)
        if group > 1:  # base after base, as `SideBySide` pairs them (one set of workers at a time)
            order = {b.name: i for i, b in enumerate(self.trained)}
            jobs.sort(key=lambda job: order[job.branch.name])
        scheduler = Scheduler(lambda fit_job, model: finish(fit_job.tag, model), self._fit, n_jobs=self.n_jobs,
                              group=group, failed=_failed,
                              make_worker=lambda fit_job: self._worker_maker(fit_job.tag.branch))
        run_all((self._prepare(job, group) for job in jobs), scheduler)
        return self._out_of_fold(plan, finished, keep_fold_models)

    def _out_of_fold(self, plan, finished, keep_fold_models):
        """``(oof, fold_models, scores)`` of ``run`` from each fold's ``(model, feats, score)``,
        summed in fold order: the same meta-features whatever order the folds finished in."""
        n = self.data.rows
        sums, counts = {}, {}
        scores, fold_models = {b.name: [] for b in self.trained}, {}
        for k, (_, test_rows) in enumerate(plan.splits):
            for b in self.trained:
                model, feats, fold_score = finished[(k, b.name)]
                if b.name not in sums:
                    sums[b.name] = np.zeros((n,) + feats.shape[1:], "float64")
                    counts[b.name] = np.zeros(n, "int64")
                sums[b.name][test_rows] += feats
                counts[b.name][test_rows] += 1
                scores[b.name].append(fold_score)
                if keep_fold_models:
                    fold_models.setdefault(b.name, []).append(model)
        oof = {}
        for name, total in sums.items():
            shape = (-1,) + (1,) * (total.ndim - 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                oof[name] = (total / counts[name].reshape(shape)).astype("float32")
        return oof, fold_models, scores

    def final_branches(self, fold_models, refit):
        """Branch name -> the frozen branch the stacked graph holds: the refit model
        (``refit=True``; also in ``base_models``) or the average of the fold models."""
        finals = {}
        for i, b in enumerate(self.trained):
            method = self.methods[b.name]
            if refit:
                if b.name in self._refits:  # trained by `run`
                    model = self._refits[b.name]
                elif self.store.has_refit(b.name):
                    model = self.store.load_refit(b.name)
                else:
                    model = self.train(b, None, fold_seed(self.seed, 10_000, i))
                    self.store.save_refit(b.name, model)
                self._advance("refit", i + 1)
                self.base_models[b.name] = model
                finals[b.name] = bt.as_branch(b, model, method)
            else:
                average = fold_average_model(b, fold_models[b.name], method, self.shapes)
                finals[b.name] = Branch(
                    average, name=b.name, inputs=b.input_names, trainable=False, output="raw"
                )
        return finals

    def train(self, branch, rows, seed):
        """A fresh model of ``branch`` trained on ``rows`` (``None``: every row)."""
        return self._fit(self._prepare(_Job(branch, seed, rows), threads_allowed=False))

    def _scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def _prepare(self, job, group=1, threads_allowed=True):
        """In the calling thread (it seeds the global random state): the `FitJob` of a
        fresh model of the job's branch, compiled and fed its rows, its route decided."""
        keras.utils.set_random_seed(job.seed)
        with self._scope():
            model = bt.fresh_model(job.branch, self.shapes, self.head)
            x, y_rows, settings, shareable = bt.prepare(
                model, job.branch, self.head, self.data.arrays, self.data.y, job.rows, job.seed,
                self.data.sample_weight)
        n_jobs = self.n_jobs if threads_allowed else 1
        route = fit_jobs.route(model, x, y_rows, settings, group, n_jobs, shareable)
        shared = None
        if shareable and route == fit_jobs.THREAD:
            idle = self._idle[job.branch.name]
            shared = idle.pop() if idle else SharedFit(self._worker_maker(job.branch))
            self._lent[job] = shared
            shared.ready(model)  # builds the worker here, not in the pool thread
        elif shareable:
            shared = self.shared[job.branch.name]
        return fit_jobs.FitJob(model, x, y_rows, settings, job.seed, route, key=job.branch.name, tag=job,
                               shared=shared)

    def _fit(self, fit_job):
        if fit_job.route != fit_jobs.THREAD:  # `Model.fit` draws from the global state: as `prepare` left it
            keras.utils.set_random_seed(fit_job.seed)
        try:
            with self._scope():
                fit_jobs.fit_job(fit_job)
                return fit_job.model
        except Exception as error:  # in a pool thread its name says nothing: name the job
            raise _failed(error, [fit_job]) from error

    def _give_back(self, job):
        shared = self._lent.pop(job, None)
        if shared is not None:
            self._idle[job.branch.name].append(shared)

    def _held_out(self, branch, model, rows):
        """(meta-features, score) of a fold model on its held-out ``rows``."""
        arrays = self.data.arrays
        feats = bt.predict(self._features_of(branch, model), branch.input_names, arrays, rows)
        # probabilities, logits and raw outputs rank the classes as the base's own output
        # does, so they score the fold without a second predict
        method = self.methods[branch.name]
        if method == "features":
            raw, logits = bt.predict(model, branch.input_names, arrays, rows), None
        else:
            raw, logits = feats, {"logits": True, "predict_proba": False}.get(method)
        return feats, bt.score(self.head, raw, self.data.y[rows], from_logits=logits)

    def _worker_maker(self, branch):
        def make():
            model = bt.fresh_model(branch, self.shapes, self.head)
            bt.compile_base(model, branch, self.head)
            return model

        return make

    def _features_of(self, branch, model):
        """The meta-feature model of a trained fold model.

        Built once per base (a copy of the first fold model) and given each later fold
        model's weights, so its predict function is traced once, not once per fold. The
        weights correspond when they have the same names and shapes in the same order:
        the layer part of their paths is left out, since Keras numbers the layers of each
        build of a callable anew (`dense`, `dense_1`, ...) and `build_model` adds a scope.
        """
        cached = self._feature_models.get(branch.name)
        if cached is not None and _layout(cached.weights) == _layout(model.weights):
            cached.set_weights(model.get_weights())
            return cached
        features = bt.feature_model(branch, model, self.methods[branch.name], self.shapes)
        self._feature_models[branch.name] = features
        return features

    def _advance(self, stage, count):
        if self.progress is not None:
            self.progress.add(1, values=[(stage, count)])
