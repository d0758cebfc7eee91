"""Do no harm: the Stacker's choice between its learned top and fixed member weights.

A meta-learner trained on out-of-fold (OOF) meta-features can score below its best
member: with one useful and one useless base it learns noise from the useless one. So
after the OOF features exist, `Stacker(selection="auto")` (the default) scores three
candidates on the OOF rows, each by an inner cross-validation over the cached features:

- "meta": the configured fusion, meta-learner and head (`model.top`), from the same
  initial weights and with the same `meta_fit` settings as the final one, trained on the
  inner training rows (one traced call per epoch on cached arrays; one compiled copy,
  reset before each inner fold, serves them all, so its epoch is traced once);
- "caruana": Caruana ensemble selection (`kfuse.ensemble.caruana`: forward selection
  with replacement, 25 steps, ties to members already in, best step kept) over the
  members' OOF class probabilities (log loss) or outputs (MSE, regression);
- "best": the best single member (Caruana with one pick).

The inner folds are a shuffled (Stratified)KFold over the OOF rows (the Stacker's int
`cv`, at most 5 folds; 3 otherwise). When the Stacker's `cv` keeps time order (a
`TimeSeriesSplit`, or a splitter whose class name contains "TimeSeries";
`kfuse.stacking.folds.time_ordered`) they are a `TimeSeriesSplit(3)` over the OOF rows in
time order instead (with the outer `gap`): each inner training part precedes its held-out
part, so no future row informs the choice; the earliest chunk is then never held out, and
the scores below cover only the rows some inner fold held out.

Each is fitted on the inner training rows and scored on the inner held-out rows, in the
Stacker's metric (accuracy, or mean squared error for regression heads) and in log loss,
each row weighted by `sample_weight` and `meta_fit`'s `class_weight` when given
(Caruana's own steps weigh every row once). Starting from the simplest ("best", then
"caruana", then "meta"), a candidate replaces the one kept when its metric is better by
more than one standard error of the paired per-row difference or, within that noise,
when its log loss is lower (on few rows accuracy moves by whole rows; log loss uses every
row's probabilities). A
"caruana" or "best" winner gets its weights from all OOF rows and its graph is the
members' fixed `WeightedAverage` (`kfuse.ensemble.assemble.fixed_average`), ending in
`ProbabilityLogits` for classification heads, so the graph still hands out logits.

Fixed weights apply when every branch hands over what the head predicts: class
probabilities (`stack_method="predict_proba"`, the default for classification) or, for a
regression head, head-shaped raw outputs. Otherwise "auto" keeps the meta-learner and
says why in `selection_reason_`; an explicit "caruana" or "best" is refused.
"""

import difflib
from dataclasses import dataclass, field

import keras
import numpy as np

from kfuse.layers.heads import head_config
from kfuse.stacking.cache import fit_top
from kfuse.stacking.folds import forward_folds, kfold, time_ordered
from kfuse.utils.optimizers import new_optimizer
from kfuse.utils.outputs import (  # noqa: F401
    beats,
    class_ids,
    loss,
    metric_name,
    row_scores,
    score,
    standard_error,
)

SELECTIONS = ("auto", "meta", "caruana", "best")
#: a tie goes to the first of these
SIMPLEST_FIRST = ("best", "caruana", "meta")
#: Caruana's steps (AutoGluon's default)
ENSEMBLE_SIZE = 25
#: inner folds: the Stacker's int cv, at most this many (3 for other cv kinds)
MAX_INNER_FOLDS = 5


def check_selection(selection, branches, methods, head):
    """Raise for an unknown `selection`, or a forced weights path that cannot apply."""
    if not isinstance(selection, str) or selection not in SELECTIONS:
        close = difflib.get_close_matches(str(selection), SELECTIONS, n=1)
        raise ValueError(
            f"Stacker: selection must be one of {SELECTIONS}; received {selection!r}"
            + (f". Did you mean {close[0]!r}?" if close else "")
        )
    if selection in ("caruana", "best"):
        reason = weights_refused(branches, methods, head)
        if reason is not None:
            raise ValueError(
                f"Stacker(selection={selection!r}): fixed member weights do not apply: {reason}. "
                "Use selection='meta' (the learned meta-learner) or 'auto'."
            )


def weights_refused(branches, methods, head, features=None):
    """Why fixed weights cannot average these branches' meta-features, or None."""
    want = "predict_proba" if head.activation is not None else "raw"
    for b in branches:
        if methods[b.name] != want:
            kind = "class probabilities (stack_method='predict_proba')" if want == "predict_proba" else "raw outputs"
            return f"branch '{b.name}' hands over {methods[b.name]!r}, not {kind}"
        if b.is_fresh and not b.trainable:
            return f"branch '{b.name}' is a frozen callable: its outputs are hidden units, not predictions"
        if features is not None:
            shape = tuple(np.asarray(features[b.name]).shape[1:])
            if shape != (head.units,):
                return f"branch '{b.name}' hands over shape {shape}, not the head's ({head.units},)"
    return None


@dataclass
class Choice:
    """What `choose` found: `selection` ("meta", "caruana" or "best"), `weights` (branch ->
    float, or None for "meta"), the candidates' inner-CV `scores` and log `losses`, the
    `metric` scored, and the `reason` no comparison ran (or None)."""

    selection: str
    weights: dict = None
    scores: dict = field(default_factory=dict)
    metric: str = None
    reason: str = None
    losses: dict = field(default_factory=dict)


# -- scores: `kfuse.utils.outputs` (re-exported here, where the selection reads them) ------


# -- the candidates -------------------------------------------------------------------------
def _target(head, y):
    """The labels `y` as Caruana's steps and the scores read them, one entry per row:
    values `(n, k)` in float64 (regression), class ids (softmax) or 0/1 per unit `(n, k)`
    (sigmoid units). Read once per selection; a subset of rows is `target[rows]`."""
    y = np.asarray(y)
    if head.activation is None:
        return y.astype("float64").reshape(len(y), -1)
    if head.activation == "softmax":
        return class_ids(y).astype("int64")
    return (y.reshape(len(y), -1) > 0.5).astype("int64")


def member_weights(head, predictions, y, ensemble_size):
    """Caruana weights (summing to one) over member predictions on the same rows."""
    return _weights_on(head, predictions, _target(head, y), ensemble_size)


def _weights_on(head, predictions, target, ensemble_size):
    """`member_weights` with the labels read already (`_target`)."""
    from kfuse.ensemble.weights import caruana

    predictions = [np.asarray(p, "float64") for p in predictions]
    n = len(target)
    if head.activation is None:
        return caruana([p.reshape(n, -1) for p in predictions], target, ensemble_size, "mse")[0]
    if head.activation == "softmax":
        return caruana(predictions, target, ensemble_size, "log_loss")[0]
    # sigmoid units (binary, multi-label): each unit as a two-class problem, one log loss
    pairs = [np.stack([1.0 - p.reshape(-1), p.reshape(-1)], axis=1) for p in predictions]
    return caruana(pairs, target.reshape(-1), ensemble_size, "log_loss")[0]


def _average(predictions, weights):
    return sum(w * np.asarray(p, "float64") for w, p in zip(weights, predictions, strict=True))


def train_top(settings, top, features, arrays, y, rows, seed, metrics=True):
    """Compile `top` with a fresh optimizer and the head's loss; train it on the cached
    features of `rows` with the `meta_fit` settings (a `TopSettings`). Returns the History."""
    compile_top(settings, top, metrics)
    return fit_compiled_top(settings, top, features, arrays, y, rows, seed)


def compile_top(settings, top, metrics=True):
    """Compile `top` for `train_top`: a fresh `meta_fit` optimizer, the head's loss."""
    head = settings.head
    with settings.scope():
        optimizer = new_optimizer(settings.meta_fit["optimizer"], settings.meta_fit["learning_rate"])
        top.compile(
            optimizer=optimizer, loss=head.loss(), metrics=head.metrics() if metrics else None, jit_compile=False
        )


def fit_compiled_top(settings, top, features, arrays, y, rows, seed):
    """Train the compiled `top` as `train_top` does, without compiling it again."""
    fit_settings = settings.fit_settings(len(rows))
    for compiled in ("optimizer", "learning_rate"):
        fit_settings.pop(compiled, None)
    keras.utils.set_random_seed(seed)
    data = top_data(top, features, arrays, rows)
    if settings.sample_weight is not None:
        fit_settings["sample_weight"] = settings.sample_weight[rows]
    return fit_top(top, data, y[rows], seed=seed, verbose=0, **fit_settings)


def top_data(top, features, arrays, rows):
    names = [t.name for t in top.inputs] if not isinstance(top.input, dict) else list(top.input)
    return {k: np.asarray(features[k] if k in features else arrays[k])[rows] for k in names}


def row_weights(settings, target, rows):
    """The weight of each OOF row in the scores: `sample_weight` times the class weight
    of `meta_fit={"class_weight": ...}` (None: every row counts once); `target` is
    `_target` of the rows (class ids, for a softmax head)."""
    weights = None if settings.sample_weight is None else np.asarray(settings.sample_weight, "float64")[rows]
    by_class = settings.meta_fit.get("class_weight")
    if by_class and settings.head.activation == "softmax":
        factor = np.array([float(by_class.get(int(i), 1.0)) for i in target])
        weights = factor if weights is None else weights * factor
    if weights is not None and not np.sum(weights) > 0:
        return None
    return weights


def _inner_folds(settings, y, rows):
    """The inner splits of the OOF rows (positions into `rows`), or (None, reason).

    A shuffled (Stratified)KFold over the OOF rows, or, when the Stacker's `cv` keeps time
    order (`kfuse.stacking.folds.time_ordered`: a `TimeSeriesSplit`), a
    `TimeSeriesSplit(k)` over the OOF rows in the order of their positions in the training
    data (with the outer splitter's `gap`): every inner training position precedes every
    held-out one, so no later row informs the choice for an earlier one. Such splits never
    hold out the earliest rows; `choose` scores only the rows some split held out."""
    cv = settings.cv
    k = min(int(cv), MAX_INNER_FOLDS) if isinstance(cv, int) and not isinstance(cv, bool) else 3
    if time_ordered(cv):
        return forward_folds(k, rows, getattr(cv, "gap", 0))
    strata = None if settings.strata is None else settings.strata[rows]
    if strata is not None:  # every inner fold holds out a row of each class
        k = min(k, int(np.unique(strata, return_counts=True)[1].min()))
    k = min(k, len(rows))
    if k < 2:
        return None, f"the {len(rows)} out-of-fold rows allow no inner cross-validation"
    return kfold(k, strata, len(rows), settings.seed + 11), None


def _meta_predictions(settings, top, features, arrays, y, rows, splits):
    """Inner out-of-fold predictions of the learned top (probabilities, or values).

    One copy of the top, compiled once, trains every inner fold: before each, its weights
    go back to the final top's initial ones and its optimizer's variables to their
    untrained values, so each fold trains as a freshly compiled copy would (tested equal)
    while the traced epoch and predict functions serve every fold, not one each.
    """
    head = settings.head
    with settings.scope():
        inner = keras.models.clone_model(top)
    compile_top(settings, inner, metrics=False)
    with settings.scope():
        inner.optimizer.build(inner.trainable_variables)
    untrained = [np.array(v.numpy()) for v in inner.optimizer.variables]
    start = top.get_weights()  # the final top's initial weights (a warm start included)
    out = None
    for k, (tr, te) in enumerate(splits):
        inner.set_weights(start)
        for variable, value in zip(inner.optimizer.variables, untrained, strict=True):
            variable.assign(value)
        fit_compiled_top(settings, inner, features, arrays, y, rows[tr], seed=settings.seed + 7 + 1000 * (k + 1))
        raw = np.asarray(inner.predict(top_data(inner, features, arrays, rows[te]), batch_size=1024, verbose=0))
        pred = head.probabilities(raw) if head.activation is not None else raw
        if out is None:
            out = np.zeros((len(rows),) + pred.shape[1:], "float64")
        out[te] = pred
    return out


def choose(settings, top, top_features, member_features, arrays, y, rows):
    """The `selection` of `settings` (a `TopSettings`) resolved on the OOF `rows`: a `Choice`.

    `top` is the learned top, `top_features` what it trains on (meta-features, or the
    level-2 outputs), `member_features` each branch's meta-features (for fixed weights).
    """
    metric = metric_name(settings.head)
    if settings.selection == "meta":
        return Choice("meta", metric=metric, reason="selection='meta'")
    reason = weights_refused(settings.branches, settings.methods, settings.head, member_features)
    if reason is not None:
        if settings.selection != "auto":
            raise ValueError(f"Stacker(selection={settings.selection!r}): fixed member weights do not apply: {reason}")
        return Choice("meta", metric=metric, reason=reason)
    predictions = [np.asarray(member_features[n], "float64")[rows] for n in settings.branch_names]
    target = _target(settings.head, y[rows])
    if settings.selection != "auto":  # forced: weights from all OOF rows, nothing scored
        size = 1 if settings.selection == "best" else ENSEMBLE_SIZE
        weights = _named_weights(settings, predictions, target, size)
        return Choice(settings.selection, weights, metric=metric, reason=f"selection={settings.selection!r}")
    splits, reason = _inner_folds(settings, y, rows)
    if splits is None:
        return Choice("meta", metric=metric, reason=reason)
    candidates = {name: _weights_predictions(settings.head, predictions, target, splits, size)
                  for name, size in (("best", 1), ("caruana", ENSEMBLE_SIZE))}
    candidates["meta"] = _meta_predictions(settings, top, top_features, arrays, y, rows, splits)
    return _compared(settings, candidates, predictions, target, rows, splits)


def _named_weights(settings, predictions, target, size):
    """Branch name -> Caruana weight (`size` steps) over the members' `predictions`."""
    weights = _weights_on(settings.head, predictions, target, size)
    return dict(zip(settings.branch_names, map(float, weights), strict=True))


def _weights_predictions(head, predictions, target, splits, size):
    """Inner out-of-fold predictions of Caruana weights with `size` steps."""
    out = np.zeros_like(predictions[0])
    for tr, te in splits:
        w = _weights_on(head, [p[tr] for p in predictions], target[tr], size)
        out[te] = _average([p[te] for p in predictions], w)
    return out


def _compared(settings, candidates, predictions, target, rows, splits):
    """The `Choice` among the `candidates`' inner predictions, simplest first.

    Scored on the rows some inner split held out (every row for k-fold; forward-in-time
    splits never hold out the earliest chunk, which has no inner prediction), against
    `target` (`_target` of the OOF rows `rows`).
    """
    head, metric = settings.head, metric_name(settings.head)
    held = np.zeros(len(rows), bool)
    for _, te in splits:
        held[te] = True
    scored = np.flatnonzero(held)
    truth = target[scored]
    weights_of = row_weights(settings, truth, rows[scored])
    candidates = {name: p[scored] for name, p in candidates.items()}
    scores = {name: score(head, candidates[name], truth, weights_of) for name in SIMPLEST_FIRST}
    losses = {name: loss(head, candidates[name], truth, weights_of) for name in SIMPLEST_FIRST}
    chosen = SIMPLEST_FIRST[0]
    for name in SIMPLEST_FIRST[1:]:
        if beats(head, candidates[name], candidates[chosen], truth, weights_of):
            chosen = name
    if chosen == "meta":
        return Choice("meta", scores=scores, losses=losses, metric=metric)
    weights = _named_weights(settings, predictions, target, 1 if chosen == "best" else ENSEMBLE_SIZE)
    return Choice(chosen, weights, scores, metric, losses=losses)


def weighted_model(settings, branches, shapes, weights, info):
    """The final graph of a weights choice: the members' fixed `WeightedAverage`, ending
    in logits for classification heads; `info` is the Stacker's `kfuse_info["stacker"]`."""
    from kfuse.ensemble.assemble import fixed_average

    head = settings.head
    model = fixed_average(
        branches,
        [weights[b.name] for b in branches],
        name=settings.name,
        logits=head.activation,
        input_shapes=shapes,
        strategy=settings.strategy,
    )
    model.kfuse_info["head"] = head_config(head)  # predict_proba / export apply its activation
    model.kfuse_info["stacker"] = dict(info)
    model.compile(optimizer="adam", loss=head.loss(), metrics=head.metrics(), jit_compile=False)
    return model
