"""Bagging's members two at a time side by side (`kfuse.trainers.member_queue`) against one
at a time, in one process, alternating.

Issue 17's "ensembles: member training gets the same speed-ups": the fold models' lever
(`kfuse.trainers.side_by_side`, two models of one architecture in ONE traced epoch) applied to
bagging's members. Two ensembles on MNIST-1D (4,000 training rows, 1,000 test rows):
- the ensemble benchmark's network (3 Conv1D of 16 channels, `bench_ensembles.keras_net`),
  4 members x 25 epochs, batch 100;
- a heterogeneous bagging over the demo's CNN, GRU and MLP (two members each; epochs 30 /
  20 / 30, batch 100, Adam 3e-3, as the stacking benchmark trains them).
"one at a time" sets `kfuse.trainers.side_by_side.GROUP = 1` (each member alone through one
traced epoch per architecture, the path before this lever); "pairs" is the default.
Two rounds, the order reversed in the second; the ratio is pairs over one at a time,
summed over rounds. The two must give the same ensemble: the test predictions are
checked equal to the bit. `KFUSE_QUICK=1`: 300 rows, 2 epochs, one round.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench_ensembles import keras_net  # noqa: E402

from kfuse.datasets.mnist1d import load_mnist1d  # noqa: E402
from kfuse.demo import build_cnn, build_gru, build_mlp  # noqa: E402
from kfuse.ensemble import BaggingClassifier  # noqa: E402
from kfuse.trainers import side_by_side  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
ROUNDS = 1 if QUICK else 2
BATCH = 100


def _compiled(build):
    def make():
        model = build()
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", jit_compile=False)
        return model

    make.__name__ = build.__name__
    return make


def ensembles():
    epochs = (lambda e: 2) if QUICK else (lambda e: e)
    demo = [_compiled(build_cnn), _compiled(build_gru), _compiled(build_mlp)]
    return {
        "CNN16 bagging, 4 members x 25 epochs": lambda: BaggingClassifier(
            keras_net, n_estimators=4, fit_params={"epochs": epochs(25), "batch_size": BATCH}, random_state=0),
        "CNN / GRU / MLP bagging, 6 members": lambda: BaggingClassifier(
            demo, n_estimators=6, random_state=0,
            fit_params=[{"epochs": epochs(e), "batch_size": BATCH} for e in (30, 20, 30)]),
    }


def main():
    (x, y), (xt, yt) = load_mnist1d()
    if QUICK:
        x, y, xt, yt = x[:300], y[:300], xt[:300], yt[:300]
    rows = []
    for name, make in ensembles().items():
        times, outputs = {"one at a time": 0.0, "pairs": 0.0}, {}
        for r in range(ROUNDS):
            order = ["one at a time", "pairs"] if r % 2 == 0 else ["pairs", "one at a time"]
            for setting in order:
                side_by_side.GROUP = 1 if setting == "one at a time" else 2
                start = time.perf_counter()
                bag = make().fit(x, y)
                seconds = time.perf_counter() - start
                times[setting] += seconds
                outputs[setting] = bag.model_.predict(xt, verbose=0)
                print(f"{name}, round {r + 1}, {setting}: {seconds:.1f} s", flush=True)
        side_by_side.GROUP = 2
        same = np.array_equal(outputs["one at a time"], outputs["pairs"])
        accuracy = float(np.mean(np.argmax(outputs["pairs"], 1) == yt))
        rows.append((name, times["one at a time"], times["pairs"], accuracy, same))
    print(f"\nMNIST-1D, {len(x)} training rows, {ROUNDS} round(s), side_by_side.group_size() = "
          f"{side_by_side.group_size()}")
    print("| ensemble | one at a time s | pairs s | ratio | test accuracy | same ensemble |")
    print("|---|---|---|---|---|---|")
    for name, alone, pairs, accuracy, same in rows:
        print(f"| {name} | {alone:.1f} | {pairs:.1f} | {pairs / alone:.2f}x | {accuracy:.4f} | {'yes' if same else 'NO'} |")
    if not all(row[-1] for row in rows):
        print("pairs changed an ensemble: NOT the same models")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
