"""Reference predictions of the training engine, recorded on one commit and checked on another.

`python scripts/check_engine_identity.py record DIR` (from the repository root) saves (np.save) the predictions of small,
seeded fits that go through every training route: the Stacker's folds side by side (n_jobs=1)
and in threads (n_jobs=2), bagging's members in pairs (MemberQueue) and alone (class_weight:
Model.fit), bagging in one joint model (parallel=True), AdaBoost and gradient boosting (one
reused trainer network), a snapshot ensemble (one network trained on). `check DIR` runs the
same fits and fails unless every array is equal to the bit. Used to show an engine refactor
changes no result; run it with KFUSE_QUICK=1 TF_CPP_MIN_LOG_LEVEL=3.
"""

import pathlib
import sys

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this tree's kfuse and tests
try:  # the side-by-side tests' base network and Stacker (a fresh and a model branch)
    from tests.trainers.test_side_by_side import _build as _net
    from tests.trainers.test_side_by_side import _stacker as _side_by_side_stacker
except ImportError:  # the layout before issue 35, to record the reference there
    from tests.training.test_side_by_side import _build as _net
    from tests.training.test_side_by_side import _stacker as _side_by_side_stacker

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 6)).astype("float32")
Y = (X[:, 0] + X[:, 1] > 0).astype("int64") + (X[:, 2] > 0.5)


def _plain():
    inp = keras.Input((6,), name="x")
    h = keras.layers.Dense(10, activation="tanh")(inp)
    model = keras.Model(inp, keras.layers.Dense(3)(h))
    model.compile(keras.optimizers.Adam(2e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    return model


def _net_sgd():
    model = _net()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", jit_compile=False)
    return model


def _stacker(n_jobs):
    stacker = _side_by_side_stacker()
    stacker.n_jobs = n_jobs
    stacker.fit({"x": X}, Y)
    out = {f"oof_{k}": v for k, v in stacker.oof_predictions_.items()}
    out["proba"] = stacker.predict_proba({"x": X})
    return out


def cases():
    """Name -> a function returning a dict of arrays."""
    from kfuse import ensemble

    fit = {"epochs": 3, "batch_size": 16}

    def predict(estimator):
        keras.utils.set_random_seed(0)
        return {"proba": np.asarray(estimator.fit(X, Y).model_.predict(X, verbose=0))}

    return {
        "stacker_n_jobs_1": lambda: _stacker(1),
        "stacker_n_jobs_2": lambda: _stacker(2),
        "bagging_pairs": lambda: predict(ensemble.BaggingClassifier(
            [_net, _plain], n_estimators=5, max_samples=0.7, fit_params=fit, random_state=7)),
        "bagging_model_fit": lambda: predict(ensemble.BaggingClassifier(
            _plain, n_estimators=2, fit_params=dict(fit, class_weight={0: 1.0, 1: 2.0, 2: 1.0}), random_state=1)),
        "bagging_parallel": lambda: predict(ensemble.BaggingClassifier(
            _plain, n_estimators=3, fit_params=fit, random_state=2, parallel=True)),
        "adaboost": lambda: predict(ensemble.AdaBoostClassifier(_plain, n_estimators=3, fit_params=fit, random_state=3)),
        "adaboost_resample": lambda: predict(ensemble.AdaBoostClassifier(
            _plain, n_estimators=3, fit_params=fit, random_state=3, resample=True)),
        "gradient_boosting": lambda: predict(ensemble.GradientBoostingClassifier(
            _plain, n_estimators=3, fit_params=fit, random_state=4)),
        # compiled with SGD: since issue 35 a snapshot run keeps the builder's optimizer (its
        # rate replaced by the cosine schedule), and 0.2.0's default was SGD
        "snapshots": lambda: predict(ensemble.SnapshotEnsemble(
            _net_sgd, n_estimators=2, epochs=4, batch_size=16, random_state=5)),
    }


def main(mode, folder):
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for name, make in cases().items():
        arrays = make()
        keras.backend.clear_session()
        for key, value in arrays.items():
            path = folder / f"{name}.{key}.npy"
            if mode == "record":
                np.save(path, np.asarray(value))
                continue
            want = np.load(path)
            same = want.shape == np.shape(value) and np.array_equal(want, np.asarray(value))
            print(f"{name}.{key}: {'bit-identical' if same else 'DIFFERS'}")
            if not same:
                failures.append(f"{name}.{key}")
    if failures:
        raise SystemExit(f"differ from the reference: {failures}")
    print(f"{mode}: every array {'saved' if mode == 'record' else 'bit-identical'} ({folder})")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("record", "check"):
        raise SystemExit("usage: check_engine_identity.py record|check DIR")
    main(sys.argv[1], sys.argv[2])
