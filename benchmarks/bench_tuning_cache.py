"""A 10-trial fusion-design search over frozen MNIST-1D bases, with and without the cache.

Bases: the demo CNN, GRU and MLP (`kfuse.demo`), trained on 1,600 rows the search never
sees. The search: `kfuse.tuning.FusionHyperModel` with frozen bases (`finetune=0`),
RandomSearch with one seed, so both runs draw the same 10 designs; 2,400 training and
800 validation rows, batch 64. With the cache every trial trains only the layers above
the branches, on branch outputs computed once, one traced call per epoch; without it
every trial runs the bases in every step (`Model.fit` on the whole stack). Goal: at
least 5x faster, with the same best score within noise. `KFUSE_BENCH_EPOCHS` lists the
epochs per trial to measure (default "10,30"); `KFUSE_QUICK=1` shrinks it (3 trials,
2 epochs) to check that it runs.

Measured here (2 cores, quiet): 10 epochs/trial 5.2x faster in wall time (2.7 s vs 14.3 s
per trial), 30 epochs/trial 10.6x (3.3 s vs 34.9 s); best val_accuracy equal within one
validation row. Before this version (Keras `fit` on the top, the bases cloned per trial,
a checkpoint per better epoch): 1.6-2.0x.

Fixed cost per cached trial, before and after (the first table): the code of
`KFUSE_BENCH_BASELINE` (a git revision, default 71b0e4a, before the fixed-cost work of
issue 17; "" skips it) and this checkout, each in a fresh process on the same saved
bases, alternating, `KFUSE_BENCH_ROUNDS` rounds; 10 trials at 2 and at 10 epochs, the cost
extrapolated to 0 epochs, the best round shown, and after/before as a ratio. The second
table: this checkout's `make_tuner` against `keras_tuner.RandomSearch` in one process
(`KFUSE_BENCH_EPOCHS=""` prints the two alone).

Measured (2 quiet cores), latest run, with a cached trial checkpointing the top alone
(`FusedModel.save_top_weights`) and no full collection before the heap is frozen: before
0.74 CPU s per trial, after 0.34: **0.46x** (wall 0.46x; best val_accuracy 0.9325 / 0.9388
at 2 / 10 epochs, before and after). The run before those two changes: 1.25 and 0.70 s,
0.56x; the one before that (the epoch still run through Grappler): 2.14 and 1.27 s, 0.59x.
What was removed in all: the cached trials fell back to `Model.fit` on the top (the
callback wrapper's forwarding batch hooks; fixed), the epoch traced twice (variables now
built before tracing), TensorFlow's graph optimiser on every new top, KerasTuner's
`gc.collect()` walking the whole heap (`make_tuner` freezes it), the full stack's weights
copied for every better epoch and written at the end. What remains: one trace of the
epoch and its first call, building the trial's stack, `clear_session` and one small
checkpoint. Goal 0.5x: met in the latest run.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the kfuse source tree to measure: this checkout, or (in a worker) an exported baseline
sys.path.insert(0, os.environ.get("KFUSE_BENCH_TREE") or HERE)

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402

import kfuse  # noqa: E402

try:
    from kfuse.datasets.mnist1d import load_mnist1d  # noqa: E402
except ImportError:  # a baseline tree from before the package layout (KFUSE_BENCH_BASELINE)
    from kfuse.data import load_mnist1d  # noqa: E402
from kfuse.demo import QUICK_EPOCHS, train_base  # noqa: E402
from kfuse.tuning import FusionHyperModel, make_tuner  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
TRIALS = 3 if QUICK else 10
EPOCHS_LIST = [2] if QUICK else [int(e) for e in os.environ.get("KFUSE_BENCH_EPOCHS", "10,30").split(",") if e]
#: the fixed cost per cached trial: trials at FIXED_EPOCHS[0] vs FIXED_EPOCHS[1] epochs
FIXED_EPOCHS = (1, 2) if QUICK else (2, 10)
ROUNDS = 1 if QUICK else int(os.environ.get("KFUSE_BENCH_ROUNDS", 2))
#: the code "before": a git revision of this repository, measured beside this checkout in
#: the same run (each in its own process, alternating); "" skips the comparison
BASELINE = os.environ.get("KFUSE_BENCH_BASELINE", "71b0e4a")
BASE_EPOCHS = {k: (2 if QUICK else 3 * v) for k, v in QUICK_EPOCHS.items()}


def hypermodel_for(branches, cache):
    return FusionHyperModel(
        branches, head=10, finetune=0, cache=cache,
        fusions=["concat", "average", "weighted_average", "gated", "attention", "low_rank"],
    )


def search(branches, x, y, validation, cache, directory, epochs, hypermodel=None, tuner="kfuse", trials=TRIALS):
    hypermodel = hypermodel or hypermodel_for(branches, cache)
    name = f"{'cache' if cache else 'plain'}_{epochs}_{tuner}_{trials}"
    if tuner == "kfuse":
        tuner = make_tuner(hypermodel, "random", objective="val_accuracy", max_trials=trials, seed=0,
                           directory=directory, project_name=name)
    else:  # KerasTuner's own class: its per-trial gc.collect() walks the whole heap
        tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=trials, seed=0,
                                         directory=directory, project_name=name)
    start, cpu = time.perf_counter(), time.process_time()
    tuner.search(x, y, validation_data=validation, epochs=epochs, batch_size=64, verbose=0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    best = tuner.oracle.get_best_trials(1)[0]
    designs = [t.hyperparameters.values for t in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)]
    scores = [t.score for t in tuner.oracle.trials.values()]
    return (seconds, cpu), best, designs, scores


def worker(out_path, bases_dir):
    """One process's fixed cost per cached trial (the tree on sys.path), as JSON in `out_path`."""
    (x, y), (x_test, y_test) = load_mnist1d()
    train_rows, val_rows = slice(1600, 4000 if not QUICK else 2400), slice(0, 800)
    branches = [kfuse.Branch(keras.saving.load_model(os.path.join(bases_dir, f"{name}.keras")), name=name,
                             output="probabilities") for name in BASE_EPOCHS]
    validation = (x_test[val_rows], y_test[val_rows])
    directory = tempfile.mkdtemp(prefix="kfuse_bench_tuning_worker_")
    try:
        hypermodel = hypermodel_for(branches, True)
        search(branches, x[train_rows], y[train_rows], validation, True, directory, 1, hypermodel, trials=1)
        result = {"kfuse": kfuse.__file__}
        for epochs in FIXED_EPOCHS:
            keras.utils.set_random_seed(0)
            (seconds, cpu), best, _, scores = search(branches, x[train_rows], y[train_rows], validation, True,
                                                     directory, epochs, hypermodel, "kfuse", TRIALS)
            result[str(epochs)] = {"wall": seconds / TRIALS, "cpu": cpu / TRIALS, "best": best.score,
                                   "scores": [float(s) for s in scores]}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    with open(out_path, "w") as f:
        json.dump(result, f)


def before_after(bases, directory):
    """The fixed cost per cached trial of BASELINE's code and of this checkout, side by side.

    Each run is a fresh process on the same saved bases and data (`worker`), the two
    codes alternating, `ROUNDS` each; the fixed cost is extrapolated to 0 epochs from
    `FIXED_EPOCHS` as in `fixed_costs`, per run, and the table shows the best of the rounds.
    """
    bases_dir = os.path.join(directory, "bases")
    os.makedirs(bases_dir, exist_ok=True)
    for name, model in bases.items():
        model.save(os.path.join(bases_dir, f"{name}.keras"))
    tree = os.path.join(directory, "baseline")
    os.makedirs(tree)
    archive = subprocess.run(["git", "-C", HERE, "archive", BASELINE], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    trees = {"before": tree, "after": HERE}
    runs = {}
    for order in [("before", "after"), ("after", "before")] * ROUNDS:
        for label in order:
            out = os.path.join(directory, f"{label}.json")
            env = {**os.environ, "KFUSE_BENCH_TREE": trees[label]}
            done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", out, bases_dir], env=env,
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"the {label} worker failed:\n{done.stderr[-3000:]}")
            with open(out) as f:
                result = json.load(f)
            assert result["kfuse"].startswith(trees[label]), result["kfuse"]
            runs.setdefault(label, []).append(result)
        if len(runs["after"]) >= ROUNDS and len(runs["before"]) >= ROUNDS:
            break
    low, high = FIXED_EPOCHS
    fixed = {}
    print(f"Before ({BASELINE}) and after (this checkout), fixed cost per cached trial, {TRIALS} trials "
          f"at {low} and {high} epochs, one process per run, best of {ROUNDS} rounds:")
    print()
    print(f"| code | clock | s/trial at {low} | s/trial at {high} | **fixed s/trial** | best val_accuracy at {low}, {high} |")
    print("|---|---|---|---|---|---|")
    for label in ("before", "after"):
        for clock in ("cpu", "wall"):
            costs = []
            for r in runs[label]:
                t_low, t_high = r[str(low)][clock], r[str(high)][clock]
                costs.append((t_low - low * (t_high - t_low) / (high - low), t_low, t_high))
            f, t_low, t_high = min(costs)
            fixed[label, clock] = f
            bests = sorted({(r[str(low)]["best"], r[str(high)]["best"]) for r in runs[label]})
            print(f"| {label} | {clock} | {t_low:.2f} | {t_high:.2f} | **{f:.2f}** | "
                  f"{'; '.join(f'{a:.4f}, {b:.4f}' for a, b in bests)} |")
    for clock in ("cpu", "wall"):
        print(f"| **after / before** | {clock} | | | **{fixed['after', clock] / fixed['before', clock]:.2f}x** | |")
    print(flush=True)


def main():
    (x, y), (x_test, y_test) = load_mnist1d()
    base_rows, train_rows, val_rows = slice(0, 1600), slice(1600, 4000 if not QUICK else 2400), slice(0, 800)
    bases = {name: train_base(name, x[base_rows], y[base_rows], epochs) for name, epochs in BASE_EPOCHS.items()}
    branches = [kfuse.Branch(model, name=name, output="probabilities") for name, model in bases.items()]
    validation = (x_test[val_rows], y_test[val_rows])
    directory = tempfile.mkdtemp(prefix="kfuse_bench_tuning_")
    print(f"{TRIALS}-trial RandomSearch, {x[train_rows].shape[0]} train / {validation[0].shape[0]} val rows, "
          f"bases {list(bases)} frozen, batch 64")
    print()
    try:
        if BASELINE:
            before_after(bases, directory)
        fixed_costs(branches, x[train_rows], y[train_rows], validation, directory)
        if EPOCHS_LIST:
            print("| epochs/trial | run | wall s | s/trial | CPU s | best val_accuracy | mean val_accuracy |")
            print("|---|---|---|---|---|---|---|")
        for epochs in EPOCHS_LIST:
            results = {}
            for cache in (True, False):
                keras.utils.set_random_seed(0)
                results[cache] = search(branches, x[train_rows], y[train_rows], validation, cache, directory, epochs)
            report(epochs, results)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for name, model in bases.items():
        print(f"(base {name}: test accuracy {np.mean(model.predict(x_test, verbose=0).argmax(-1) == y_test):.3f})")


def fixed_costs(branches, x, y, validation, directory):
    """Seconds per cached trial at 1 and 10 epochs; the fixed cost is what 0 epochs would take.

    One hypermodel for all runs, its branch outputs cached and TensorFlow warmed by a
    1-trial search first, so the table holds the per-trial cost alone. Both tuners draw
    the same designs (seed 0); the rounds alternate their order.
    """
    hypermodel = hypermodel_for(branches, True)
    search(branches, x, y, validation, True, directory, 1, hypermodel, trials=1)
    low, high = FIXED_EPOCHS
    runs = {}
    for tuners in [("kfuse", "keras_tuner"), ("keras_tuner", "kfuse")][:ROUNDS]:
        for tuner in tuners:
            for epochs in (low, high):
                keras.utils.set_random_seed(0)
                (seconds, cpu), best, _, _ = search(branches, x, y, validation, True, directory, epochs,
                                                    hypermodel, tuner, TRIALS)
                runs.setdefault((tuner, epochs), []).append((seconds / TRIALS, cpu / TRIALS, best.score))
                shutil.rmtree(os.path.join(directory, f"cache_{epochs}_{tuner}_{TRIALS}"), ignore_errors=True)
    print(f"| tuner (cached trials) | clock | s/trial at {low} epochs | s/trial at {high} epochs | s/epoch | "
          f"**fixed s/trial** | best val_accuracy at {high} |")
    print("|---|---|---|---|---|---|---|")
    for tuner, label in (("keras_tuner", "keras_tuner.RandomSearch (plain gc)"),
                         ("kfuse", "kfuse.tuning.make_tuner (frozen heap)")):
        scores = sorted({r[2] for r in runs[(tuner, high)]})
        for column, clock in ((0, "wall"), (1, "CPU")):
            t_low = min(r[column] for r in runs[(tuner, low)])
            t_high = min(r[column] for r in runs[(tuner, high)])
            per_epoch = (t_high - t_low) / (high - low)
            print(f"| {label} | {clock} | {t_low:.2f} | {t_high:.2f} | {per_epoch:.3f} | "
                  f"**{t_low - low * per_epoch:.2f}** | {', '.join(f'{s:.4f}' for s in scores)} |", flush=True)
    print()


def report(epochs, results):
    (fast, best_fast, designs_fast, scores_fast) = results[True]
    (slow, best_slow, designs_slow, scores_slow) = results[False]
    assert designs_fast == designs_slow, "both runs must draw the same designs"
    rows = [
        ("without cache (full graph every step)", slow, best_slow, scores_slow),
        ("with cache (top on cached branch outputs)", fast, best_fast, scores_fast),
    ]
    for label, (seconds, cpu), best, scores in rows:
        print(f"| {epochs} | {label} | {seconds:.1f} | {seconds / TRIALS:.1f} | {cpu:.1f} | {best.score:.4f} | {np.mean(scores):.4f} |")
    print(f"| {epochs} | **speed-up** | **{slow[0] / fast[0]:.1f}x** | | {slow[1] / fast[1]:.1f}x | "
          f"diff {best_fast.score - best_slow.score:+.4f} | |", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(*sys.argv[2:4])
    else:
        main()
