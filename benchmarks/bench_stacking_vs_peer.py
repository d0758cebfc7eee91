"""Out-of-fold stacking: `kfuse.Stacker` against SciKeras + scikit-learn's `StackingClassifier`.

The setting of issue 17, side by side in one process: MNIST-1D (4,000 training rows,
the 1,000 test rows scored), the demo's CNN, GRU and MLP (`kfuse.demo`), epochs
30 / 20 / 30, batch 100, Adam at 3e-3, 5 stratified folds.

- peer: each base wrapped in SciKeras's `KerasClassifier`, stacked by scikit-learn's
  `StackingClassifier(cv=StratifiedKFold(5), stack_method="predict_proba")` with a
  logistic regression on top. It fits every base on all rows, then 5 fold models per
  base: 18 Keras `fit` calls.
- kfuse refit: `Stacker(cv=5, refit=True)` with the same bases and settings: the same 18
  trainings, then its default meta-learner on the out-of-fold probabilities.
- kfuse no refit: `Stacker(cv=5, refit=False)`: the 15 fold models, averaged in the graph.
- the same two with `n_jobs` = the machine's cores (`KFUSE_BENCH_JOBS`): that many models
  train at once in threads, the same models as one at a time (`kfuse.trainers.threads`).
  `KFUSE_BENCH_PEER_JOBS=1` adds the peer with `StackingClassifier(n_jobs=...)` (joblib
  processes) for comparison; the issue's setting is the peer as it comes (n_jobs=None).

Two rounds, the order reversed in the second, so neither side always runs on a warmer
(or busier) machine. The ratio is kfuse's fit time over the peer's, summed over rounds.
Goal: at most 0.6x, at equal or better test accuracy.
`KFUSE_QUICK=1` runs a small smoke version (600 rows, 2 epochs, 3 folds, one round).
`KFUSE_BENCH_SEEDS=0,1,2` repeats every row per seed (the bases' initial weights, the fold
split and SciKeras's `random_state` all follow the seed; default 0) and prints the mean test
accuracy over seeds with each seed's; `KFUSE_BENCH_ONLY` (comma-separated: peer, refit,
norefit, refit_jobs, norefit_jobs, peer_jobs) runs only those rows.

What kfuse does differently (the levers measured, see the README's speed section): each
base trains through `kfuse.trainers.epoch_loop` (one traced TensorFlow call per epoch over
in-memory tensors, the model's own `train_step`) instead of `Model.fit`'s per-step
Python dispatch, two fold models of one base (or a fold and the refit) train side by
side in one traced epoch (`kfuse.trainers.side_by_side`, bit-identical to one at a time), and
each fold is scored from its meta-features (one predict per fold).
"""

import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kfuse  # noqa: E402
from kfuse.datasets.mnist1d import load_mnist1d  # noqa: E402
from kfuse.demo import build_cnn, build_gru, build_mlp  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
ROWS = 600 if QUICK else None
EPOCHS = {"cnn": 2, "gru": 2, "mlp": 2} if QUICK else {"cnn": 30, "gru": 20, "mlp": 30}
FOLDS = 3 if QUICK else 5
ROUNDS = 1 if QUICK else int(os.environ.get("KFUSE_BENCH_ROUNDS", 2))
BATCH, LEARNING_RATE = 100, 3e-3
SEEDS = [int(v) for v in os.environ.get("KFUSE_BENCH_SEEDS", "0").split(",")]
ONLY = {v for v in os.environ.get("KFUSE_BENCH_ONLY", "").split(",") if v}
JOBS = int(os.environ.get("KFUSE_BENCH_JOBS", os.cpu_count() or 1))
PEER_JOBS = bool(os.environ.get("KFUSE_BENCH_PEER_JOBS"))
BUILDERS = {"cnn": build_cnn, "gru": build_gru, "mlp": build_mlp}


def peer(x, y, x_test, y_test, seed, n_jobs=None):
    from scikeras.wrappers import KerasClassifier
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    estimators = [
        (
            name,
            KerasClassifier(
                model=build,
                loss="sparse_categorical_crossentropy",
                optimizer=keras.optimizers.Adam,
                optimizer__learning_rate=LEARNING_RATE,
                epochs=EPOCHS[name],
                batch_size=BATCH,
                verbose=0,
                random_state=seed,
            ),
        )
        for name, build in BUILDERS.items()
    ]
    stack = StackingClassifier(
        estimators,
        final_estimator=LogisticRegression(max_iter=2000),
        cv=StratifiedKFold(FOLDS, shuffle=True, random_state=seed),
        stack_method="predict_proba",
        n_jobs=n_jobs,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack.fit(x, y)
    seconds = time.perf_counter() - start
    return seconds, float(np.mean(stack.predict(x_test) == y_test))


def kfuse_stacker(x, y, x_test, y_test, seed, refit, n_jobs=None):
    keras.utils.set_random_seed(seed)
    branches = [
        kfuse.Branch(
            build(),
            name=name,
            inputs="signal",
            fit={"epochs": EPOCHS[name], "batch_size": BATCH, "learning_rate": LEARNING_RATE},
        )
        for name, build in BUILDERS.items()
    ]
    stacker = kfuse.Stacker(branches, head=10, cv=FOLDS, refit=refit, seed=seed, verbose=0, n_jobs=n_jobs)
    start = time.perf_counter()
    stacker.fit({"signal": x}, y)
    seconds = time.perf_counter() - start
    return seconds, float(np.mean(stacker.predict({"signal": x_test}) == y_test))


def main():
    (x, y), (x_test, y_test) = load_mnist1d()
    if ROWS:
        x, y = x[:ROWS], y[:ROWS]
    runs = {
        ("peer", "peer: SciKeras + StackingClassifier"): lambda seed: peer(x, y, x_test, y_test, seed),
        ("refit", "kfuse Stacker(refit=True)"): lambda seed: kfuse_stacker(x, y, x_test, y_test, seed, True),
        ("norefit", "kfuse Stacker(refit=False)"): lambda seed: kfuse_stacker(x, y, x_test, y_test, seed, False),
        ("refit_jobs", f"kfuse Stacker(refit=True, n_jobs={JOBS})"):
            lambda seed: kfuse_stacker(x, y, x_test, y_test, seed, True, JOBS),
        ("norefit_jobs", f"kfuse Stacker(refit=False, n_jobs={JOBS})"):
            lambda seed: kfuse_stacker(x, y, x_test, y_test, seed, False, JOBS),
    }
    if PEER_JOBS:  # the peer's own parallelism: joblib processes, each importing TensorFlow
        runs[("peer_jobs", f"peer, n_jobs={JOBS}")] = lambda seed: peer(x, y, x_test, y_test, seed, JOBS)
    runs = {name: run for (key, name), run in runs.items() if not ONLY or key in ONLY}
    results = {name: [] for name in runs}  # (seed, seconds, accuracy)
    for seed in SEEDS:
        for round_ in range(ROUNDS):
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for name in order:
                seconds, accuracy = runs[name](seed)
                results[name].append((seed, seconds, accuracy))
                print(f"seed {seed} round {round_ + 1}: {name}: {seconds:.1f} s, test accuracy {accuracy:.4f}",
                      flush=True)
    peer_name = next(iter(runs))
    peer_time = sum(s for _, s, _ in results[peer_name])
    print(f"\nMNIST-1D, {len(y)} rows, epochs {EPOCHS}, batch {BATCH}, {FOLDS} folds, {ROUNDS} round(s), seeds {SEEDS}")
    print(f"{'setup':38s} {'fit s (per run)':>30s} {'test acc':>9s} {'per seed':>24s} {'time vs ' + peer_name[:4]:>13s}")
    for name, rows in results.items():
        times = " / ".join(f"{s:.1f}" for _, s, _ in rows)
        per_seed = " / ".join(f"{np.mean([a for sd, _, a in rows if sd == seed]):.4f}" for seed in SEEDS)
        accuracy = np.mean([a for _, _, a in rows])
        ratio = sum(s for _, s, _ in rows) / peer_time
        print(f"{name:38s} {times:>30s} {accuracy:9.4f} {per_seed:>24s} {ratio:12.2f}x")
    print("goal: kfuse <= 0.60x the peer's fit time, at equal or better test accuracy")


if __name__ == "__main__":
    main()
