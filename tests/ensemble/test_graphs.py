"""Ensembles as ONE graph: save/load, SavedModel, compare(), heterogeneous members, resume."""

import os

import keras
import numpy as np
import pytest

import kfuse
from kfuse.ensemble import BaggingClassifier, WeightedEnsemble


def _data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype("float32")
    y = (x[:, :3].sum(1) > 0).astype("int64") + (x[:, 3] > 1).astype("int64")
    return x, y


def cnn():
    inp = keras.Input((12,))
    h = keras.layers.Reshape((12, 1))(inp)
    h = keras.layers.Conv1D(4, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inp, keras.layers.Dense(3)(h), name="cnn")


def gru():
    inp = keras.Input((12,))
    h = keras.layers.GRU(4)(keras.layers.Reshape((12, 1))(inp))
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h), name="gru")


mlp = keras.Sequential([keras.Input((12,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)], name="mlp")


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    x, y = _data()
    work = tmp_path_factory.mktemp("bag_work")
    fitted = BaggingClassifier([cnn, gru, mlp], n_estimators=3, max_samples=60, fit_params=[{"epochs": 2}, {"epochs": 1}],
                               random_state=3, work_dir=str(work)).fit(x, y)
    return fitted, x, y, str(work)


def test_heterogeneous_bagging_is_one_graph(bag):
    fitted, x, y, _ = bag
    model = fitted.model_
    assert isinstance(model, kfuse.FusedModel)
    assert model.branch_names == ["member_0", "member_1", "member_2"]
    assert [m.name for m in fitted.estimators_][:2] == ["cnn", "gru"]
    assert all(not model.get_layer(f"member_{i}").trainable for i in range(3))
    weights = model.fusion_layer.branch_weights()
    assert weights == pytest.approx({f"member_{i}": 1 / 3 for i in range(3)})
    proba = fitted.predict_proba(x)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)


def test_save_reload_export_and_compare(bag, tmp_path):
    fitted, x, y, _ = bag
    path = tmp_path / "bag.keras"
    fitted.model_.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), fitted.model_.predict(x, verbose=0), atol=1e-6)
    from kfuse import export

    out = export.export_saved_model(fitted.model_, str(tmp_path / "served"))
    assert export.verify(fitted.model_, out, x[:8]) < 1e-5
    members = {f"member_{i}": m for i, m in enumerate(fitted.estimators_)}
    report = kfuse.compare({**members, "bagging": fitted.model_}, x, y, n_boot=50, contributions=False)
    assert "bagging" in report.table.index if hasattr(report.table, "index") else "bagging" in str(report.table)
    assert report.diversity is not None


def test_work_dir_resumes_and_refuses_another_configuration(bag):
    fitted, x, y, work = bag
    assert sorted(f for f in os.listdir(work) if f.endswith(".keras")) == [f"member_{i}.keras" for i in range(3)]
    os.remove(os.path.join(work, "member_2.npz"))  # as if the run crashed before member 2 was done
    again = BaggingClassifier([cnn, gru, mlp], n_estimators=3, max_samples=60, fit_params=[{"epochs": 2}, {"epochs": 1}],
                              random_state=3, work_dir=work).fit(x, y)
    for a, b in zip(again.estimators_[:2], fitted.estimators_[:2], strict=True):
        np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), atol=1e-6)
    assert os.path.exists(os.path.join(work, "member_2.npz"))
    with pytest.raises(ValueError, match="different configuration.*n_estimators|different configuration"):
        BaggingClassifier([cnn, gru, mlp], n_estimators=4, max_samples=60, random_state=3, work_dir=work).fit(x, y)


def test_weighted_ensemble_over_heterogeneous_members_reads_weights(bag):
    fitted, x, y, _ = bag
    xv, yv = _data(n=60, seed=5)
    ens = WeightedEnsemble(fitted, method="caruana").fit(xv, yv)
    weights = ens.model_.fusion_layer.branch_weights()
    np.testing.assert_allclose(list(weights.values()), ens.weights_, atol=1e-6)
    probs = [kfuse.ensemble.base.probabilities(m, x) for m in fitted.estimators_]
    np.testing.assert_allclose(ens.model_.predict(x, verbose=0), np.tensordot(ens.weights_, np.stack(probs), 1), atol=1e-5)
