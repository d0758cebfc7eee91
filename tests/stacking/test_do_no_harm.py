"""Do no harm: the default Stacker is never worse on held-out data than its best member by
more than noise (issue 14), and keeps a meta-learner that really helps.

scikit-learn digits (8x8 images, 10 classes), fixed seeds. Useless member: a fresh MLP
(useful) and a tiny CNN (two 3x3 filters, 2 epochs: near chance) trained out-of-fold
by `Stacker(meta=(16,), cv=3)`, the issue's case. Complementary members: two frozen MLPs,
one seeing the top three pixel rows, one the bottom three, trained on rows the Stacker
never sees; neither alone is good, a learned meta-learner over both is.
"""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import kfuse
from tests.helpers import assert_round_trip

#: the noise allowed below the best member, on the ~1,200 held-out rows (12 rows)
TOLERANCE = 0.01
UPPER, LOWER = np.arange(0, 24), np.arange(40, 64)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    return (x / 16.0).astype("float32")[order], y[order].astype("int64")


def _mlp(t):
    return keras.layers.Dense(32, activation="relu")(t)


def _cnn(t):
    t = keras.layers.Reshape((8, 8, 1))(t)
    t = keras.layers.Conv2D(2, 3, activation="relu")(t)
    return keras.layers.GlobalAveragePooling2D()(t)


def _useless_case_branches():
    pixels = {"pixels": (64,)}
    return [
        kfuse.Branch(_mlp, name="mlp", inputs=pixels, fit={"epochs": 8, "batch_size": 64, "learning_rate": 1e-2}),
        kfuse.Branch(_cnn, name="cnn", inputs=pixels, fit={"epochs": 2, "batch_size": 64, "learning_rate": 3e-3}),
    ]


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, batch_size=1024, verbose=0), -1) == y))


@pytest.fixture(scope="module")
def useless(digits, tmp_path_factory):
    """The default Stacker and the old behaviour (selection='meta') on the same folds:
    the second fit resumes the first one's fold and refit checkpoints from work_dir."""
    x, y = digits
    train, test = slice(0, 600), slice(600, None)
    work = tmp_path_factory.mktemp("do_no_harm")
    fitted = {}
    for selection in ("auto", "meta"):
        stacker = kfuse.Stacker(
            _useless_case_branches(), meta=(16,), head=10, cv=3, seed=0, verbose=0, work_dir=work,
            **({} if selection == "auto" else {"selection": selection}),
        )
        fitted[selection] = stacker.fit({"pixels": x[train]}, y[train])
    members = {n: _accuracy(m, x[test], y[test]) for n, m in fitted["auto"].base_models_.items()}
    held_out = {k: s.score({"pixels": x[test]}, y[test]) for k, s in fitted.items()}
    return fitted, members, held_out, x[test]


@pytest.mark.slow
def test_default_stacker_holds_the_line_with_a_useless_member(useless):
    fitted, members, held_out, _ = useless
    assert members["mlp"] > 0.9 and members["cnn"] < 0.5, members  # the case: one useful, one useless
    best = max(members.values())
    default = fitted["auto"]
    assert held_out["auto"] >= best - TOLERANCE, (held_out, members, default.selection_scores_)
    # the recorded choice: fixed weights that all but drop the useless CNN
    assert default.selection_ in ("best", "caruana"), default.selection_scores_
    assert default.selection_weights_["mlp"] >= 0.8 and default.selection_metric_ == "accuracy"
    assert set(default.selection_scores_) == {"meta", "caruana", "best"}
    # within noise on accuracy, the lower log loss decides (selection's documented rule)
    assert default.selection_scores_[default.selection_] >= default.selection_scores_["meta"] - TOLERANCE
    assert default.selection_losses_[default.selection_] < default.selection_losses_["meta"]
    assert default.selection_reason_ is None and default.meta_history_ == {}
    # the old behaviour stays reachable, and scores no better than the default here
    old = fitted["meta"]
    assert old.selection_ == "meta" and old.selection_scores_ == {} and old.selection_weights_ is None
    assert held_out["auto"] >= held_out["meta"] - TOLERANCE, held_out
    assert old.meta_history_["loss"]


@pytest.mark.slow
def test_the_chosen_weights_are_one_graph_that_saves_and_reloads(useless, tmp_path):
    fitted, _, _, x_test = useless
    default = fitted["auto"]
    model = default.model_
    assert isinstance(model, kfuse.FusedModel) and model.branch_names == ["mlp", "cnn"]
    weights = model.fusion_layer.branch_weights()
    assert weights == pytest.approx(default.selection_weights_)
    assert model.kfuse_info["stacker"]["selection"] == default.selection_
    # logits out, as a head gives: their softmax is the weighted average of the members
    members = default.model_.branch_outputs(x_test[:50])
    average = sum(weights[n] * members[n] for n in weights)
    np.testing.assert_allclose(default.predict_proba(x_test[:50]), average, atol=1e-4)
    loaded = assert_round_trip(model, x_test[:50], tmp_path)
    assert loaded.head.units == 10
    np.testing.assert_allclose(loaded.predict_proba(x_test[:50]), average, atol=1e-4)


@pytest.fixture(scope="module")
def complementary(digits):
    x, y = digits
    members_rows, stack_rows, test = slice(0, 500), slice(500, 1000), slice(1000, None)
    members = []
    for name, cols in (("upper", UPPER), ("lower", LOWER)):
        keras.utils.set_random_seed(0)
        inp = keras.Input((len(cols),), name=f"{name}_pixels")
        out = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(32, activation="relu")(inp))
        model = keras.Model(inp, out, name=name)
        model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", jit_compile=False)
        model.fit(x[members_rows][:, cols], y[members_rows], epochs=20, batch_size=64, verbose=0)
        members.append(model)

    def feed(rows):
        return {"upper_pixels": x[rows][:, UPPER], "lower_pixels": x[rows][:, LOWER]}

    fitted = {}
    for selection in ("auto", "caruana"):
        branches = [kfuse.Branch(m, name=m.name, trainable=False) for m in members]
        stacker = kfuse.Stacker(branches, meta=(16,), head=10, cv=3, seed=0, verbose=0, selection=selection)
        fitted[selection] = stacker.fit(feed(stack_rows), y[stack_rows])
    accuracy = {m.name: _accuracy(m, feed(test)[f"{m.name}_pixels"], y[test]) for m in members}
    held_out = {k: s.score(feed(test), y[test]) for k, s in fitted.items()}
    return fitted, accuracy, held_out


@pytest.mark.slow
def test_a_meta_learner_that_helps_is_kept(complementary):
    fitted, members, held_out = complementary
    assert max(members.values()) < 0.85, members  # neither member alone is good
    default = fitted["auto"]
    assert default.selection_ == "meta", default.selection_scores_
    assert default.selection_scores_["meta"] > default.selection_scores_["caruana"]
    assert default.selection_weights_ is None and default.meta_history_["loss"]
    # the learned meta-learner beats both the best member and the fixed weights held out
    assert held_out["auto"] >= max(members.values()) + 0.05, (held_out, members)
    assert held_out["auto"] >= held_out["caruana"], held_out
    assert fitted["caruana"].selection_ == "caruana" and fitted["caruana"].selection_scores_ == {}


def test_selection_is_a_checked_parameter():
    branch = kfuse.Branch(lambda t: keras.layers.Dense(4)(t), name="b", inputs={"x": (3,)})
    stacker = kfuse.Stacker([branch], head=3, selection="meta")
    assert stacker.get_params()["selection"] == "meta"
    assert kfuse.Stacker([branch], head=3).selection == "auto"
    with pytest.raises(ValueError, match="selection must be one of.*Did you mean 'caruana'"):
        kfuse.Stacker([branch], head=3, selection="caruna")
    with pytest.raises(ValueError, match="fixed member weights do not apply.*'logits'"):
        kfuse.Stacker([branch], head=3, stack_method="logits", selection="best")


def test_regression_compares_by_mse_and_keeps_the_exact_member():
    """Regression: the same choice by mean squared error; a frozen exact linear member
    beside a random one is kept alone, and the graph predicts what that member does."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4)).astype("float32")
    w = np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    y = (x @ w).reshape(-1)
    exact, noise = (keras.Sequential([keras.Input((4,), name="u"), keras.layers.Dense(1)], name=n) for n in ("exact", "noise"))
    exact.set_weights([w, np.zeros(1, "float32")])
    branches = [kfuse.Branch(m, name=m.name, trainable=False) for m in (exact, noise)]
    stacker = kfuse.Stacker(branches, meta=(16,), head=kfuse.layers.heads.Regression(1), cv=3, verbose=0, meta_fit={"epochs": 20})
    stacker.fit(x, y)
    assert stacker.selection_metric_ == "mse" and stacker.selection_ in ("best", "caruana")
    assert stacker.selection_weights_["exact"] > 0.95, stacker.selection_weights_
    assert stacker.selection_scores_[stacker.selection_] < stacker.selection_scores_["meta"]
    np.testing.assert_allclose(stacker.predict(x[:20]).reshape(-1), y[:20], atol=0.2)


def test_a_one_row_win_is_noise_and_the_log_loss_decides():
    """The paired difference's standard error uses the unbiased variance: a challenger
    right on one row more than the incumbent (and equal elsewhere) is within noise, so
    the smoother log loss decides; three rows more, none fewer, is a real win."""
    from kfuse.layers.heads import Classification
    from kfuse.stacking import selection

    head = Classification(3)
    n = 1000
    y = np.zeros(n, "int64")
    incumbent = np.tile([0.9, 0.05, 0.05], (n, 1))  # right everywhere but the first rows
    incumbent[:3] = [0.3, 0.6, 0.1]
    one_row = np.tile([0.8, 0.1, 0.1], (n, 1))  # less confident where both are right: higher log loss
    one_row[1:3] = incumbent[1:3]
    assert selection.score(head, one_row, y) - selection.score(head, incumbent, y) == pytest.approx(1 / n)
    assert selection.loss(head, one_row, y) > selection.loss(head, incumbent, y)
    assert not selection.beats(head, one_row, incumbent, y)
    assert selection.beats(head, incumbent, one_row, y)  # within noise, lower log loss

    three_rows = one_row.copy()
    three_rows[:3] = [0.8, 0.1, 0.1]
    assert selection.beats(head, three_rows, incumbent, y)  # 3 / n > its standard error

    diff = selection.row_scores(head, one_row, y) - selection.row_scores(head, incumbent, y)
    w = np.full(n, 1.0 / n)
    assert selection.standard_error(diff, w) == pytest.approx(np.std(diff, ddof=1) / np.sqrt(n))


def test_inner_folds_train_in_one_compiled_top_as_fresh_compiles_would():
    """The "meta" candidate's inner folds share one compiled copy of the top (one trace of
    its epoch and predict) and still give, bit for bit, what a freshly compiled copy per
    fold gives, with dropout (the seed state carried from fold to fold) and row weights."""
    from kfuse.stacking import selection

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 0.5)
    members = []
    for i in range(2):
        keras.utils.set_random_seed(i)
        members.append(keras.Sequential(
            [keras.Input((6,), name="x"), keras.layers.Dense(3, activation="softmax")], name=f"m{i}"))

    def meta(t):
        return keras.layers.Dropout(0.3)(keras.layers.Dense(8, activation="relu")(t))

    stacker = kfuse.Stacker([kfuse.Branch(m, name=m.name, trainable=False) for m in members], meta=meta,
                            head=3, cv=3, seed=0, verbose=0, meta_fit={"epochs": 4})
    weights = rng.uniform(0.5, 2.0, size=len(y))
    stacker.fit({"x": x}, y, sample_weight=weights)
    rows, arrays, top = stacker.oof_rows_, {"x": x}, stacker.model_.top
    splits, _ = selection._inner_folds(stacker.top_settings_, y, rows)
    keras.utils.set_random_seed(5)
    shared = selection._meta_predictions(stacker.top_settings_, top, stacker.features_, arrays, y, rows, splits)

    keras.utils.set_random_seed(5)  # the code before: a fresh compile (and traces) per fold
    inner, start = keras.models.clone_model(top), top.get_weights()
    fresh = np.zeros_like(shared)
    for k, (tr, te) in enumerate(splits):
        inner.set_weights(start)
        selection.train_top(stacker.top_settings_, inner, stacker.features_, arrays, y, rows[tr],
                            seed=stacker.seed_ + 7 + 1000 * (k + 1), metrics=False)
        raw = inner.predict(selection.top_data(inner, stacker.features_, arrays, rows[te]), verbose=0)
        fresh[te] = stacker.head_.probabilities(np.asarray(raw))
    assert len(splits) == 3 and np.all(np.isfinite(shared))
    np.testing.assert_array_equal(shared, fresh)
