"""`Stacker`: leak-free stacking of Keras networks into one Keras graph."""

import contextlib
import random
import time

import keras
import numpy as np
from sklearn.base import BaseEstimator

from kfuse.distribute.strategy import strategy_scope
from kfuse.models.fused import check_finite_weights
from kfuse.models.graph import check_branches
from kfuse.stacking import base_training as bt
from kfuse.stacking import selection as select
from kfuse.stacking.base_folds import BaseFolds, BaseResult, fold_seed
from kfuse.stacking.cache import cached_features, through_graph
from kfuse.stacking.checkpoint import WorkDir
from kfuse.stacking.data import input_names, read_data
from kfuse.stacking.estimator import EstimatorOutputs, classes_of, resolve_seed
from kfuse.stacking.final_graph import Graph, stack_final
from kfuse.stacking.fingerprint import fingerprint
from kfuse.stacking.folds import resolve_cv
from kfuse.stacking.levels import LevelTwo
from kfuse.stacking.settings import TopSettings, check_prefit, resolve_arguments
from kfuse.trainers.threads import resolve_n_jobs
from kfuse.utils.progress import progress_bar
from kfuse.utils.quiet import quiet_tensorflow


class Stacker(EstimatorOutputs, BaseEstimator):
    """Out-of-fold stacking of Keras networks, returning ONE Keras graph.

    For each fold, every trainable base is cloned with fresh weights and trained on the
    other folds with its own settings (`Branch(..., fit={...})`); its predictions on the
    held-out fold form the out-of-fold (OOF) meta-features, which train the fusion,
    meta-learner and head. So the meta-learner never learns from predictions a base made
    on its own training rows (the stacking leak). Frozen branches are not retrained:
    their outputs are computed once (the cache) and the head trains on the cached arrays.

    Args:
        branches (list[Branch]): list of `kfuse.Branch`.
        meta (tuple[int, ...] | Callable | keras.layers.Layer | None): as for `kfuse.stack`. With
            `meta=None` and an int `head`, the head gets a small L2 penalty (a logistic regression
            on the meta-features), which keeps the gain on few rows.
        head (int | object): int (classes), or a `kfuse.layers.heads.*` object (required).
        fusion (str | keras.layers.Layer): as for `kfuse.stack`.
        cv (int | float | str | object): int (StratifiedKFold for classification, KFold otherwise),
            any scikit-learn splitter, a float (holdout blending: that fraction trains the
            meta-learner) or "prefit" (bases used as they are; warns about the leak).
        stack_method (str): "auto", "predict_proba", "logits", "features" (the branch's `tap`
            layer; frozen branches only, since each fold model's hidden units are its own
            space) or "raw". "auto": the branch's own
            `output`/`tap` if set, else probabilities for classification, raw for
            regression.
        passthrough (bool): as for `kfuse.stack`.
        refit (bool): True retrains each base on all rows for the final graph; False keeps the
            K fold models and averages them inside the graph.
        cache (bool): train the head on cached frozen-branch outputs (False: through the graph).
        levels (int): 1, or 2 (level-2 learners trained out-of-fold on the level-1 OOF outputs).
            With a time-ordered `cv` (`TimeSeriesSplit`) the level-2 folds are forward in
            time; the earliest chunk of the OOF rows then has no level-2 OOF prediction,
            and the meta-learner trains (and the selection scores) on `level2_.rows`, the
            rows that have one. See `kfuse.stacking.levels`.
        seed (int): every fold and base is seeded from it; results are deterministic.
        work_dir (str | os.PathLike | None): folder for checkpoints; a second `fit` resumes after a
            crash.
        strategy (tf.distribute.Strategy | str | None): a `tf.distribute` strategy or name, as for
            `kfuse.stack`.
        verbose (int): 1 shows one progress bar over folds x branches; 0 is silent.
        meta_fit (dict | None): dict of settings for training the meta-learner and head (epochs,
            batch_size, optimizer, learning_rate); defaults `META_FIT_DEFAULTS`.
        selection (str | bool): "auto" (default) scores, by an inner cross-validation over the
            cached OOF meta-features, the learned top ("meta"), Caruana-selected fixed weights over
            the members' OOF outputs ("caruana") and the best single member ("best"), and keeps the
            best (ties to the simpler): so the Stacker does no harm where a meta-learner would learn
            noise from a useless member. "meta" forces the learned fusion / meta-learner / head (the
            behaviour before `selection` existed), "caruana" or "best" the fixed weights. Fixed
            weights need class probabilities (`stack_method="predict_proba"`) or, for a regression
            head, head-shaped raw outputs (compared by MSE); elsewhere "auto" keeps "meta". With a
            time-ordered `cv` (`TimeSeriesSplit`) the inner folds are forward in time too. See
            `kfuse.stacking.selection`.
        n_jobs (int | None): how many base models train at once, in threads (scikit-learn's name;
            None: 1, -1: one per core). The fold models (and the refits) are the same
            whatever the number: everything that draws from a random state runs in the
            calling thread, in order, and each thread runs one model's seeded epochs
            (`kfuse.trainers.threads`). Bases whose settings need `Model.fit` (callbacks,
            `validation_split`, a strategy, ...) or `verbose` train one at a time.
            With one thread (None, 1), two fold models (or a fold and the refit) of one
            base train side by side in one traced epoch, each on its own batches
            (`kfuse.trainers.side_by_side`: the same models, bit for bit, on TensorFlow's
            inter-op threads; one at a time where TensorFlow has one inter-op thread).

    Fitted attributes: `model_` (a `kfuse.FusedModel`), `oof_predictions_` (branch ->
    array, NaN on rows no fold held out), `oof_rows_`, `cv_scores_` (branch -> score per
    fold: accuracy, or mean squared error for regression), `cv_metric_`, `fit_time_`,
    `base_models_` (refit=True: each base retrained on all rows), `fold_models_`
    (refit=False: branch -> its K fold models), `features_` (the meta-features used),
    `selection_` ("meta", "caruana" or "best": what `model_` is), `selection_scores_`
    (candidate -> inner-CV score on the OOF rows; empty unless selection="auto"),
    `selection_losses_` (the same in log loss; MSE for regression),
    `selection_metric_` ("accuracy" or "mse"), `selection_weights_` (branch -> fixed
    weight, None for "meta"; a weights graph is the members' `WeightedAverage`, read with
    `model_.fusion_layer.branch_weights()`, ending in logits), `selection_reason_`
    (why no comparison ran, or None), `meta_history_` (the top's training history),
    `level2_` (levels=2: the `LevelTwo` learners), `trained_names_` (the branches trained
    here, sorted), the resolved arguments `branches_`, `head_`, `methods_`, `meta_fit_`,
    `seed_`, `strategy_`, `sample_weight_`, and `top_settings_` (the `TopSettings` the
    selection and the top's training read). `classes_` and `n_features_in_` as in
    scikit-learn.

    Example:

    ```python
    import keras, numpy as np, kfuse

    x = np.random.default_rng(0).normal(size=(60, 40)).astype("float32")
    y = np.arange(60) % 3
    trained = keras.Sequential([keras.Input((40,), name="signal"), keras.layers.Dense(3, activation="softmax")])
    branches = [kfuse.Branch(trained, name="prior", trainable=False),  # used as it is
                kfuse.Branch(lambda t: keras.layers.Dense(8, activation="relu")(t), name="fresh",
                             inputs="signal", fit={"epochs": 1})]     # trained out-of-fold
    stacker = kfuse.Stacker(branches, head=3, cv=2, verbose=0, meta_fit={"epochs": 2})
    stacker.fit(x, y)
    stacker.predict(x).shape        # (60,): class labels
    stacker.predict_proba(x).shape  # (60, 3)
    ```
    """

    def __init__(
        self,
        branches,
        meta=None,
        head=None,
        fusion="concat",
        cv=5,
        stack_method="auto",
        passthrough=False,
        refit=True,
        cache=True,
        levels=1,
        seed=0,
        work_dir=None,
        strategy=None,
        verbose=1,
        meta_fit=None,
        name="kfuse_stacker",
        random_state=None,
        selection="auto",
        n_jobs=None,
    ):
        # scikit-learn's contract: store every argument unchanged; derive in fit
        self.branches = branches
        self.meta = meta
        self.head = head
        self.fusion = fusion
        self.cv = cv
        self.stack_method = stack_method
        self.passthrough = passthrough
        self.refit = refit
        self.cache = cache
        self.levels = levels
        self.seed = seed
        self.work_dir = work_dir
        self.strategy = strategy
        self.verbose = verbose
        self.meta_fit = meta_fit
        self.name = name
        self.random_state = random_state
        self.selection = selection
        self.n_jobs = n_jobs
        branches, head, methods, _ = self._resolve()  # errors at construction; nothing is stored
        select.check_selection(selection, branches, methods, head)

    def _resolve(self):
        """(branches, head, methods, meta_fit) checked from the arguments
        (`kfuse.stacking.settings.resolve_arguments`)."""
        return resolve_arguments(self.branches, self.head, self.meta, self.levels, self.meta_fit,
                                 self.n_jobs, self.stack_method, self.refit)

    # -- fitting ------------------------------------------------------------------------
    @property
    def input_names(self):
        return input_names(check_branches(self.branches))

    def fit(self, x, y=None, sample_weight=None, allow_nonfinite=False):
        """Train bases out-of-fold, then the meta-learner and head; returns self.

        `x`: an array, a dict of input name -> array, or a `tf.data.Dataset` of (x, y)
        or (x, y, sample_weight); `sample_weight` weighs the rows in every base's and
        the head's loss. The caller's Python and numpy random states are left as they
        were (the Stacker seeds its own work from `random_state` / `seed`).

        The steps, in order: `_settle` the arguments, `_read` the data once
        (`kfuse.stacking.data`), `_split` the rows into folds, `_freeze` the branches used
        as they are, `_train_bases` out-of-fold, `_build` the graph on the meta-features,
        `_choose` between the learned top and fixed weights, `_finish` that choice.
        """
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            # a model per fold: TensorFlow's retracing warnings are noise; the work_dir is
            # released (`claims`) when the fit ends, finished or not
            with quiet_tensorflow(), contextlib.ExitStack() as claims:
                start = time.perf_counter()
                self._settle()
                data = self._read(x, y, sample_weight, allow_nonfinite)
                plan = self._split(data)
                trained, frozen = self._freeze(plan, data.shapes, allow_nonfinite)
                bases = self._train_bases(plan, trained, data, claims)
                graph = self._build(bases, frozen, data, allow_nonfinite)
                choice = self._choose(graph, data)
                self._finish(choice, graph, data)
                self.fit_time_ = time.perf_counter() - start
                return self
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

    def _settle(self):
        """Resolve the arguments for this fit: `branches_`, `head_`, `methods_`,
        `meta_fit_`, `seed_`, and what follows from them alone (`classes_`,
        `n_features_in_`, `cv_metric_`)."""
        self.branches_, self.head_, self.methods_, self.meta_fit_ = self._resolve()
        select.check_selection(self.selection, self.branches_, self.methods_, self.head_)
        self.seed_ = resolve_seed(self.random_state, self.seed)
        self.classes_ = classes_of(self.head_)
        self.n_features_in_ = len(self.input_names)
        self.cv_metric_ = select.metric_name(self.head_)

    def _read(self, x, y, sample_weight, allow_nonfinite):
        """The data, read and checked once (`kfuse.stacking.data.read_data`): a `StackData`.
        Also resolves the strategy (`strategy_`) and sets `sample_weight_`."""
        data = read_data(self.branches_, self.head_, x, y, sample_weight, allow_nonfinite)
        _, self.strategy_ = strategy_scope(self.strategy)
        self.sample_weight_ = data.sample_weight
        return data

    def _split(self, data):
        """The `Plan` of the rows (`cv` resolved); sets `oof_rows_` (the rows some fold
        holds out) and `top_settings_` (with the plan's `strata`, which the inner folds
        of the selection and the level-2 folds draw on). `cv="prefit"` takes built bases
        only."""
        plan = resolve_cv(self.cv, data.y, self.head_, self.seed_)
        if plan.kind == "prefit":
            check_prefit(self.branches_)
        self.oof_rows_ = plan.held_out_rows(data.rows)
        self.top_settings_ = self._top_settings(plan.strata)
        return plan

    def _freeze(self, plan, shapes, allow_nonfinite):
        """(trained, frozen) branches: those trained out-of-fold here, and those used as
        they are (a frozen callable built once, seeded; weights checked finite). Sets
        `trained_names_`."""
        trained = [b for b in self.branches_ if b.trainable and plan.kind != "prefit"]
        frozen = [self._frozen(b, shapes) for b in self.branches_ if b not in trained]
        if not allow_nonfinite:
            for b in frozen:
                check_finite_weights(b.base, f"Stacker.fit: frozen branch '{b.name}'")
        self.trained_names_ = sorted(b.name for b in trained)
        return trained, frozen

    def _frozen(self, branch, shapes):
        """A frozen branch over a built model (a frozen callable is built once, seeded)."""
        if not branch.is_fresh:
            return branch
        keras.utils.set_random_seed(fold_seed(self.seed_, 999, self.branches_.index(branch)))
        return branch.built_frozen(shapes)

    def _train_bases(self, plan, trained, data, claims):
        """Train the `trained` bases out-of-fold (and refit), resuming from `work_dir`:
        a `BaseResult`. Sets `base_models_` (refit), `fold_models_` (no refit),
        `oof_predictions_` and `cv_scores_`."""
        store = claims.enter_context(WorkDir(self.work_dir, self._fingerprint(plan, data)))
        steps = len(trained) * (plan.n_splits + (1 if self.refit else 0))
        progress = progress_bar(steps, self.verbose, unit_name="fit", stateful_metrics=["fold", "refit"])
        folds = BaseFolds(trained, self.methods_, self.head_, data, store, self.seed_, self.strategy_,
                          progress, resolve_n_jobs(self.n_jobs))
        oof, fold_models, scores = folds.run(plan, keep_fold_models=not self.refit, refit=self.refit)
        finals = folds.final_branches(fold_models, self.refit)
        self.base_models_, self.fold_models_ = folds.base_models, fold_models
        self.oof_predictions_, self.cv_scores_ = oof, scores
        return BaseResult(oof, finals)

    def _fingerprint(self, plan, data):
        """What the fold models depend on (`kfuse.stacking.fingerprint`), for a `work_dir`
        (None without one: nothing is compared, so nothing is hashed or built)."""
        if self.work_dir is None:
            return None
        trained = set(self.trained_names_)
        return fingerprint(self.branches_, trained, self.methods_, plan, self.seed_, self.head_, data)

    def _build(self, bases, frozen, data, allow_nonfinite):
        """The graph on the meta-features: sets `model_` (and `level2_` for `levels=2`) and
        `features_`; returns a `Graph` (what the top trains on, and on which rows)."""
        ordered = [bases.finals[b.name] if b.name in bases.finals else
                   bt.as_branch(b, b.base, self.methods_[b.name]) for b in self._in_order(frozen)]
        features = dict(bases.oof)
        self.features_ = features
        if self.levels == 2:
            features.update(cached_features(frozen, self.methods_, data.arrays, data.shapes))
            self.level2_ = LevelTwo(self.top_settings_, features, data.y, self.oof_rows_, data.arrays)
            branch = self.level2_.branch(ordered, data.shapes)
            self.model_ = self._stack([branch], data.shapes, fusion=None, passthrough=False)
            return Graph(ordered, ["level2"], self.level2_.oof, features, self.level2_.rows)
        self.model_ = self._stack(ordered, data.shapes)
        members = features  # every member's meta-features, for fixed weights (selection)
        if frozen and (self.cache or self.selection != "meta"):  # one batched pass over every frozen branch
            cached = self.model_.branch_outputs(data.arrays, 1024, names=[b.name for b in frozen],
                                                check_finite=not allow_nonfinite)
            if self.cache:  # the top trains on them (cache=False: only the choice reads them)
                features.update(cached)
            members = {**features, **cached}
        return Graph(ordered, [b.name for b in self.branches_], features, members, self.oof_rows_)

    def _in_order(self, frozen):
        """The branches in the user's order, each frozen one as `_freeze` made it."""
        by_name = {b.name: b for b in frozen}
        return [by_name.get(b.name, b) for b in self.branches_]

    def _top_settings(self, strata):
        """The `TopSettings` of this fit: what the selection, the level-2 learners and the
        training of the top read (never the Stacker itself)."""
        return TopSettings(
            head=self.head_, meta_fit=self.meta_fit_, seed=self.seed_, cv=self.cv, selection=self.selection,
            branches=tuple(self.branches_), methods=self.methods_, sample_weight=self.sample_weight_,
            strategy=self.strategy_, name=self.name, passthrough=bool(self.passthrough),
            input_names=tuple(self.input_names), strata=strata,
        )

    def _choose(self, graph, data):
        """The `selection` resolved on the OOF rows (`kfuse.stacking.selection.choose`);
        sets `selection_`, `selection_scores_`, `selection_losses_`, `selection_metric_`,
        `selection_weights_` and `selection_reason_`."""
        choice = select.choose(self.top_settings_, self.model_.top, {**graph.members, **graph.features},
                               graph.members, data.arrays, data.y, graph.rows)
        self.selection_, self.selection_scores_ = choice.selection, choice.scores
        self.selection_losses_ = choice.losses
        self.selection_metric_, self.selection_reason_ = choice.metric, choice.reason
        self.selection_weights_ = choice.weights
        return choice

    def _finish(self, choice, graph, data):
        """Train the learned top (`_train_top`) or, for fixed weights, build their graph;
        sets `model_` (its optimizer built) and `meta_history_`."""
        info = {**self.model_.kfuse_info["stacker"], "selection": choice.selection}
        if choice.weights is None:
            self.model_.kfuse_info["stacker"] = info
            self._train_top(graph.names, graph.features, data.arrays, data.y, graph.rows)
        else:
            info["weights"] = choice.weights
            self.model_ = select.weighted_model(self.top_settings_, graph.ordered, data.shapes, choice.weights, info)
            self.meta_history_ = {}
        optimizer = self.model_.optimizer
        if optimizer is not None and not optimizer.built:
            with self.model_.strategy_scope():  # a strategy's variables are made in its scope
                optimizer.build(self.model_.trainable_variables)

    def _stack(self, branches, shapes, fusion="from_self", passthrough=None):
        """The fused graph of `branches` with this Stacker's meta-learner and head, seeded
        (`kfuse.stacking.final_graph.stack_final`)."""
        record = {
            "cv": repr(self.cv),
            "stack_method": self.methods_,
            "refit": bool(self.refit),
            "trained": list(self.trained_names_),  # not expected to equal their bases
            "levels": self.levels,
            "seed": self.seed_,
        }
        fusion = self.fusion if fusion == "from_self" else fusion
        return stack_final(self.top_settings_, branches, shapes, fusion, self.meta, record, passthrough)

    def _train_top(self, names, features, arrays, y, rows):
        """Train `model_.top` (fusion, meta-learner, head) on the meta-features of `rows`."""
        model = self.model_
        through = []
        if not self.cache and self.levels == 1:
            through = [n for n in names if n not in self.trained_names_]
        with model.strategy_scope():
            top = model.top if not through else through_graph(model, through)
        history = select.train_top(self.top_settings_, top, features, arrays, y, rows, seed=self.seed_ + 7)
        self.meta_history_ = history.history

    def __repr__(self):
        names = [b.name for b in check_branches(self.branches)]
        return (
            f"Stacker(branches={names}, cv={self.cv!r}, stack_method={self.stack_method!r}, "
            f"refit={self.refit}, levels={self.levels})"
        )
