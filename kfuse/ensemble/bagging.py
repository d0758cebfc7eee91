"""Bagging: members trained on random row samples, averaged in ONE graph."""

import warnings

import numpy as np

from kfuse import engines
from kfuse.ensemble import base, remote
from kfuse.ensemble.assemble import weighted_graph
from kfuse.ensemble.conventions import Ensemble
from kfuse.inputs.selection import take
from kfuse.trainers import members as members_training
from kfuse.trainers.member_queue import MemberQueue


class BaggingClassifier(Ensemble):
    """Bagging of Keras networks, as scikit-learn's `BaggingClassifier`, as one graph.

    Each member is a fresh network trained on `max_samples` rows drawn with replacement
    (`bootstrap=True`) or without; the graph averages the members' class probabilities
    (`WeightedAverage` with fixed, equal weights). With `oob_score=True`,
    `oob_decision_function_[i]` is the mean probability over the members whose sample
    left row i out, normalised to sum to one, and `oob_score_` its accuracy (scikit-learn's
    definition; a row no member left out gets NaN and a warning).

    Args:
        estimator (Callable | keras.Model | list): a builder callable, a `keras.Model` to clone, or
            a list of either (heterogeneous members: member i uses entry i modulo the list length).
        n_estimators (int): number of members.
        max_samples (float | int): rows per member: a float in (0, 1] (fraction) or an int count.
        bootstrap (bool): draw rows with replacement.
        oob_score (bool): compute the out-of-bag score (needs `bootstrap=True`).
        fit_params (dict | list[dict] | None): other keywords of Keras `Model.fit` (`callbacks`,
            `validation_data`, `shuffle`, `class_weight`...): a dict for every member, or a list
            (one per member). `epochs` and `batch_size` are arguments of their own
            (`fit_params={"epochs": ...}`, 0.2's spelling, still works and warns).
        random_state (int | None): int seed of the samples and the members' initialisation.
        verbose (int): 1 shows a progress bar over members; 0 is silent.
        work_dir (str | os.PathLike | None): folder where finished members are kept; `fit` again
            resumes.
        parallel (bool): train all members at once in one Keras model (one trace, one pass over
            the batches), each weighting rows by its sample (bootstrap counts, as
            scikit-learn does for estimators with `sample_weight`). Used when one
            `fit_params` dict serves every member and they share an optimizer. False
            (the default) trains each on its own rows, two members of one spec side by
            side in one traced epoch (`kfuse.trainers.member_queue`; the same members as
            one at a time): measured faster (4 MNIST-1D CNNs x 25 epochs: 9.4 s one by
            one, 18 s in one model through `Model.fit`).
        epochs (int): epochs each member trains (one run of one network, as everywhere in
            `kfuse.ensemble`).
        batch_size (int): rows per training step.

    Each member trains with the optimizer its builder compiled (Adam and the task's loss
    when it compiled none).

    Fitted attributes: `model_` (the graph), `estimators_`, `estimators_samples_`,
    `classes_`, `n_classes_`, `oob_score_`, `oob_decision_function_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import BaggingClassifier

    x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    bag = BaggingClassifier(build, n_estimators=2, epochs=1, random_state=0).fit(x, y)
    bag.model_.predict(x, verbose=0).shape  # (60, 2)
    ```
    """

    task = "classification"

    def __init__(self, estimator, n_estimators=10, max_samples=1.0, bootstrap=True, oob_score=False,
                 fit_params=None, random_state=None, verbose=0, work_dir=None, parallel=False, epochs=1,
                 batch_size=32):
        super().__init__(estimator, epochs, batch_size, fit_params, random_state, verbose, work_dir)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.bootstrap = bootstrap
        self.oob_score = oob_score
        self.parallel = parallel

    def _sample_count(self, n):
        who, m = self._who(), self.max_samples
        if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)):
            raise TypeError(f"{who}: `max_samples` must be a float in (0, 1] or an int; received {m!r}")
        if isinstance(m, (float, np.floating)):
            if not 0.0 < m <= 1.0:
                raise ValueError(f"{who}: `max_samples`={m} is outside (0, 1]; give a fraction such as 0.8, or an int row count")
            return max(1, int(round(m * n)))
        if not 1 <= m <= n:
            raise ValueError(f"{who}: `max_samples`={m} rows, but x has {n} rows; give at most {n} or a fraction in (0, 1]")
        return int(m)

    def _targets(self, y):
        self.classes_, target = base.encode_labels(y, self._who())
        self.n_classes_ = len(self.classes_)
        return target

    def _classes(self):
        """The classes each member's outputs must match (None for regression)."""
        return self.classes_ if self.task == "classification" else None

    def _samples(self, n, n_estimators):
        """The rows of each member: `max_samples` drawn with or without replacement."""
        count = self._sample_count(n)
        if self.oob_score and not self.bootstrap:
            raise ValueError(f"{self._who()}: oob_score=True needs bootstrap=True (out-of-bag rows exist only when sampling with replacement)")
        rng = np.random.default_rng(self.random_state)
        return [rng.choice(n, size=count, replace=bool(self.bootstrap)) for _ in range(n_estimators)]

    def _fit(self, x, y, claims):
        who, n = self._who(), len(y)
        n_estimators = base.check_positive_int(self.n_estimators, "n_estimators", who)
        specs = base.spec_list(self.estimator, who)
        samples = self._samples(n, n_estimators)
        target = self._targets(y) if self.task == "classification" else y.astype("float32")
        settings = self._fit_settings()
        store = self._open_store(claims, x, y)
        bar = self._progress(n_estimators)
        members = self._fit_parallel(specs, samples, x, target, n, store, bar, settings)
        if members is None:
            members = self._fit_members(specs, samples, x, target, store, bar, settings)
        self.estimators_ = members
        self._finish(x, target, n, samples)
        return self

    def _finish(self, x, target, n, samples):
        """The fitted attributes beyond `estimators_`, and `model_`: the average."""
        self.estimators_samples_ = samples
        if self.oob_score:
            self._set_oob(x, target, n)
        self.model_ = weighted_graph(self.estimators_, [1.0] * len(self.estimators_), self.task, name="bagging")

    def _fit_members(self, specs, samples, x, target, store, bar, settings):
        """Each member built from its seed and trained on its rows; two of one spec side by
        side in one traced epoch where they can (`MemberQueue`: the same members)."""
        who, trained = self._who(), {}

        def done(i, model):
            store.save(base.member(i), model, rows=samples[i])
            trained[i] = model
            bar.update(len(trained))

        engine = engines.active_engine(who)  # processes, Ray, Dask: joblib.parallel_config
        if engine is not None:
            for i in range(len(samples)):
                if store.has(base.member(i)):
                    trained[i], _ = base.load_member(store, i)
                    bar.update(len(trained))
            remote.fit_members(self, specs, samples, x, target, store, done, engine, settings)
            return [trained[i] for i in range(len(samples))]
        queue = MemberQueue(done)
        for i, rows in enumerate(samples):
            if store.has(base.member(i)):
                trained[i], _ = base.load_member(store, i)
                bar.update(len(trained))
                continue
            model = base.new_member(specs[i % len(specs)], self._seed(i), self.task, who, i, self._classes())
            queue.add(i, i % len(specs), model, take(x, rows), target[rows], settings.member(i))
        queue.finish()
        return [trained[i] for i in range(len(samples))]

    def _fit_parallel(self, specs, samples, x, target, n, store, bar, settings):
        who = self._who()
        if not self.parallel or len(settings.entries) > 1 or any(store.has(base.member(i)) for i in range(len(samples))):
            return None
        members = [base.new_member(specs[i % len(specs)], self._seed(i), self.task, who, i, self._classes())
                   for i in range(len(samples))]
        if not base.same_optimizers(members):
            return None
        weights = [np.bincount(rows, minlength=n) for rows in samples]
        members_training.fit_parallel(members, x, target, weights, settings.member(0), seed=self.random_state)
        for i, (model, rows) in enumerate(zip(members, samples, strict=True)):
            store.save(base.member(i), model, rows=rows)
        bar.update(len(members))
        return members

    def _member_outputs(self, model, x):
        if self.task == "classification":
            return base.probabilities(model, x)
        out = np.asarray(model.predict(x, verbose=0), dtype="float64")
        return out.reshape(len(out), -1)

    def _set_oob(self, x, target, n):
        total, hits = None, np.zeros(n)
        for model, rows in zip(self.estimators_, self.estimators_samples_, strict=True):
            out_of_bag = np.ones(n, dtype=bool)
            out_of_bag[rows] = False
            pred = self._member_outputs(model, take(x, np.flatnonzero(out_of_bag)))
            if total is None:
                total = np.zeros((n, pred.shape[-1]))
            total[out_of_bag] += pred
            hits[out_of_bag] += 1
        if (hits == 0).any():
            warnings.warn(f"{self._who()}: {(hits == 0).sum()} rows were in every member's sample and have no OOB "
                          "prediction (NaN); use more members.", stacklevel=3)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.task == "classification":
                decision = total / total.sum(axis=1, keepdims=True)
                self.oob_decision_function_ = decision
                self.oob_score_ = float(np.mean(np.argmax(np.nan_to_num(decision, nan=-1.0), axis=1) == target))
            else:
                pred = (total / hits[:, None]).reshape(n, -1)
                self.oob_prediction_ = pred[:, 0] if pred.shape[1] == 1 else pred
                t = target.reshape(n, -1)
                ok = hits > 0
                self.oob_score_ = float(1 - ((t[ok] - pred[ok]) ** 2).sum() / ((t[ok] - t[ok].mean(0)) ** 2).sum())


class BaggingRegressor(BaggingClassifier):
    """Bagging for regression: members' outputs averaged; `oob_prediction_` and R^2 `oob_score_`.

    Same arguments as `BaggingClassifier`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import BaggingRegressor

    x = np.random.default_rng(0).normal(size=(60, 3)).astype("float32"); y = x.sum(1)
    build = lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    bag = BaggingRegressor(build, n_estimators=2, epochs=1, random_state=0).fit(x, y)
    ```
    """

    task = "regression"

    def _targets(self, y):
        return y
