"""Ensembles on SMALL data (scikit-learn digits) against torchensemble 0.2, side by side.

Issue 35's question: on small data, does kfuse's per-fit fixed cost (building the
members, tracing their training step, assembling the graph) eat the lead the MNIST-1D
benchmark (`bench_ensembles.py`) shows? One process, one seed after another: scikit-learn
digits (`sklearn.datasets.load_digits`, offline: 1,797 8x8 images, split 1,257 train / 540
test, stratified), the same small CNN in Keras and PyTorch (Conv 16 3x3 - ReLU - MaxPool 2
- Conv 32 3x3 - ReLU - MaxPool 2 - Dense 10, PyTorch's initialisation in both), Adam 1e-3,
batch 100, 5 members x 20 epochs (the one-run methods train one network for 5 x 20 epochs;
FGE: 20 warm-up epochs, then cycles of 2), 5 seeds. Rows: Voting, Bagging, Snapshot, FGE,
GradientBoosting, each against torchensemble's class of that name.

Per row: test accuracy mean and standard error over seeds, the paired kfuse - peer gap and
its standard error, fit seconds, the time ratio kfuse / peer (goal: at most 0.8x), and
kfuse's fixed cost per fit: a second kfuse fit of 1 epoch per member (FGE: 1 warm-up epoch)
gives, with n(E) the epochs the fit trains in all, fixed = t(1) - n(1) (t(E) - t(1)) /
(n(E) - n(1)): the time not proportional to the epochs (first seed only).

Measured side by side (2026-12-08, `python benchmarks/side_by_side.py BEFORE
bench_ensembles_small` with KFUSE_SEEDS=0,1,2,3,4 KFUSE_BENCH_THREADS=1 KFUSE_BENCH_FIXED=0,
2 cores, quiet machine, one run: 9dc63b9, then 901fd60); time ratio kfuse / peer, before ->
after: Voting 0.67 -> 0.70, Bagging 0.69 -> 0.69, Snapshot 0.54 -> 0.51, FGE 0.89 -> 0.77
(peer 1.2-1.3 s), GradientBoosting 0.36 -> 0.38; the same accuracies (every gap within 0.3
points, 96.3-98.4%). What changed for FGE: the graph is built on the snapshots themselves
(one copy per snapshot, not two; `estimators_` are copied out when first read), and the kept
workers are bounded by the parameters they hold, not by a count of 4 that this loop of five
ensembles overran (a run before that bound gave FGE 0.98 -> 0.90). A fit after the first of
an architecture in the process takes the kept workers (`kfuse.trainers.kept`: no copy, no
trace); the warm-up fit leaves one for the first timed fit. What is left of FGE's fixed cost
(cProfile of a fit with a kept worker): one copy per snapshot, about 37 ms each on this net,
a sixth of the fit.

`make bench` installs torchensemble. KFUSE_QUICK=1: 2 members x 2 epochs, 1 seed, no
fixed-cost fits (about a minute). Knobs: KFUSE_SEEDS (default 0,1,2,3,4),
KFUSE_BENCH_EPOCHS (20), KFUSE_BENCH_MEMBERS (5), KFUSE_BENCH_ONLY (comma-separated row
names), KFUSE_BENCH_FIXED=0 skips the fixed-cost fits, KFUSE_BENCH_KEPT=0 clears the workers
a fit keeps for the next (`kfuse.trainers.kept`) before every kfuse fit, so each pays its own
copy and trace as a process's first fit of an architecture does (default: kept, as in any
loop of fits; the warm-up fit leaves one for the first timed fit), KFUSE_BENCH_THREADS=N gives both
libraries N CPU threads (default: each library's own). On a loaded machine set it: with
more runnable threads than cores, PyTorch's OpenMP threads spin and one epoch of this net
took 3-4 s at 2 threads against 0.1-0.3 s at 1 (2 cores, load 8), which measures the load,
not the libraries.
"""

import contextlib
import io
import logging
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench_ensembles import _init, torch_accuracy  # noqa: E402

from kfuse import ensemble  # noqa: E402

QUICK = bool(os.environ.get("KFUSE_QUICK"))
SEEDS = [0] if QUICK else [int(s) for s in os.environ.get("KFUSE_SEEDS", "0,1,2,3,4").split(",")]
EPOCHS = 2 if QUICK else int(os.environ.get("KFUSE_BENCH_EPOCHS", "20"))
MEMBERS = 2 if QUICK else int(os.environ.get("KFUSE_BENCH_MEMBERS", "5"))
FIXED = not QUICK and os.environ.get("KFUSE_BENCH_FIXED", "1") != "0"
THREADS = int(os.environ.get("KFUSE_BENCH_THREADS", "0"))
ONLY = {name for name in os.environ.get("KFUSE_BENCH_ONLY", "").split(",") if name}
KEPT = os.environ.get("KFUSE_BENCH_KEPT", "1") != "0"
BATCH, LR = 100, 1e-3
SNAP_LR, FGE_LR, FGE_CYCLE = 5 * LR, (5 * LR, 1e-4), 2  # one setting for both libraries
ROWS = ("Voting", "Bagging", "Snapshot", "FGE", "GradientBoosting")


def set_threads():
    """Both libraries on THREADS CPU threads (before either runs an op)."""
    if not THREADS:
        return
    import tensorflow as tf
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(THREADS)


def load():
    """Digits, 1,257 train / 540 test rows (stratified, fixed split), pixels in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y.astype("int64"), test_size=0.3, random_state=0, stratify=y)


def keras_net(learning_rate=LR):
    """The torch net below, layer for layer (channels last); Adam with PyTorch's epsilon."""
    inp = keras.Input((64,))
    h = keras.layers.Reshape((8, 8, 1))(inp)
    for filters, fan_in in ((16, 1 * 9), (32, 16 * 9)):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", **_init(fan_in))(h)
        h = keras.layers.MaxPooling2D(2)(h)
    out = keras.layers.Dense(10, **_init(32 * 2 * 2))(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(learning_rate, epsilon=1e-8),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    return model


def snapshot_net():
    return keras_net(SNAP_LR)  # the cosine's peak is the compiled rate, as torchensemble's `lr`


def torch_net_class():
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(32 * 2 * 2, 10))

        def forward(self, x):
            return self.body(x.view(-1, 1, 8, 8))

    return Net


def kfuse_estimator(name, seed, epochs):
    """kfuse's row `name`, in the one convention (constructor arguments)."""
    common = {"n_estimators": MEMBERS, "batch_size": BATCH, "random_state": seed}
    if name == "Voting":
        return ensemble.VotingClassifier(keras_net, epochs=epochs, **common)
    if name == "Bagging":
        return ensemble.BaggingClassifier(keras_net, epochs=epochs, **common)
    if name == "GradientBoosting":
        return ensemble.GradientBoostingClassifier(keras_net, learning_rate=1.0, epochs=epochs, **common)
    if name == "Snapshot":
        return ensemble.SnapshotEnsemble(snapshot_net, epochs=MEMBERS * epochs, **common)
    return ensemble.FastGeometricEnsemble(keras_net, warmup_epochs=epochs, cycle=FGE_CYCLE, lr_1=FGE_LR[0],
                                          lr_2=FGE_LR[1], **common)


def kfuse_fit(name, seed, epochs, x, y):
    est = kfuse_estimator(name, seed, epochs)
    if not KEPT:  # every fit as a process's first of its architecture: its own copy and trace
        from kfuse.trainers import kept

        kept.clear()
    start = time.perf_counter()
    with warnings.catch_warnings():  # the one-run methods say they replace the compiled rate
        warnings.simplefilter("ignore", ensemble.OptimizerReplacedWarning)
        est.fit(x, y)
    return time.perf_counter() - start, est


def torch_fit(name, seed, x, y, epochs=None):
    import torch
    import torchensemble as te

    epochs = epochs or EPOCHS
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                         batch_size=BATCH, shuffle=True)
    cls, lr, kwargs = {
        "Voting": (te.VotingClassifier, LR, {"epochs": epochs}),
        "Bagging": (te.BaggingClassifier, LR, {"epochs": epochs}),
        "GradientBoosting": (te.GradientBoostingClassifier, LR, {"epochs": epochs}),
        "Snapshot": (te.SnapshotEnsembleClassifier, SNAP_LR, {"epochs": MEMBERS * epochs}),
        "FGE": (te.FastGeometricClassifier, LR, {"epochs": epochs, "cycle": FGE_CYCLE,
                                                 "lr_1": FGE_LR[0], "lr_2": FGE_LR[1]}),
    }[name]
    extra = {"n_jobs": 1} if cls in (te.VotingClassifier, te.BaggingClassifier) else {}
    model = cls(estimator=torch_net_class(), n_estimators=MEMBERS, cuda=False, **extra)
    model.set_optimizer("Adam", lr=lr)
    logging.disable(logging.WARNING)  # torchensemble logs every epoch; it also prints
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            model.fit(loader, save_model=False, log_interval=10**9, **kwargs)
            seconds = time.perf_counter() - start
    finally:
        logging.disable(logging.NOTSET)
    return seconds, model


def warm_up(data):
    """One short fit per library before the clock runs: a process's first fit pays one-time
    initialisation (kernels, thread pools) that no later fit pays."""
    x, _, y, _ = data
    kfuse_fit("Voting", 0, 1, x[:200], y[:200])
    torch_fit("Voting", 0, x[:200], y[:200], epochs=1)


def epochs_trained(name, epochs):
    """Epochs a row's fit trains in all, over every member or its one network."""
    if name == "FGE":
        return epochs + FGE_CYCLE // 2 + (MEMBERS - 1) * FGE_CYCLE
    return MEMBERS * epochs


def run_seed(seed, data):
    x, xt, y, yt = data
    out = {}
    for name in (n for n in ROWS if not ONLY or n in ONLY):
        k_time, est = kfuse_fit(name, seed, EPOCHS, x, y)
        p_time, peer = torch_fit(name, seed, x, y)
        row = {"kfuse": (est.score(xt, yt), k_time), "peer": (torch_accuracy(peer, xt, yt), p_time)}
        if FIXED and seed == SEEDS[0] and EPOCHS > 1:
            one, _ = kfuse_fit(name, seed, 1, x, y)
            n_one, n_all = epochs_trained(name, 1), epochs_trained(name, EPOCHS)
            row["fixed"] = one - n_one * (k_time - one) / (n_all - n_one)
        out[name] = row
        print(f"seed {seed}: {name} kfuse {k_time:.1f}s ({row['kfuse'][0]:.3f}), torchensemble {p_time:.1f}s "
              f"({row['peer'][0]:.3f})", file=sys.stderr, flush=True)
    return out


def se(values):
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def main():
    try:
        import torchensemble  # noqa: F401
    except ImportError:
        sys.exit("bench_ensembles_small.py needs torchensemble 0.2 and PyTorch: `make bench` installs them")
    set_threads()
    data = load()
    warm_up(data)
    results = [run_seed(s, data) for s in SEEDS]
    print(f"\ndigits, {len(data[0])} train / {len(data[1])} test rows, seeds {SEEDS}, {MEMBERS} members x "
          f"{EPOCHS} epochs, batch {BATCH}, one process, threads {THREADS or 'library default'}")
    print("| method | torchensemble acc % (SE) | kfuse acc % (SE) | kfuse - peer (SE) | peer fit s | kfuse fit s "
          "| time ratio | <= 0.8x | kfuse fixed cost / fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in results[0]:
        peer = [100 * r[name]["peer"][0] for r in results]
        mine = [100 * r[name]["kfuse"][0] for r in results]
        pt = np.mean([r[name]["peer"][1] for r in results])
        kt = np.mean([r[name]["kfuse"][1] for r in results])
        gap = [m - p for m, p in zip(mine, peer, strict=True)]
        fixed = results[0][name].get("fixed")
        print(f"| {name} | {np.mean(peer):.1f} ({se(peer):.1f}) | {np.mean(mine):.1f} ({se(mine):.1f}) | "
              f"{np.mean(gap):+.1f} ({se(gap):.1f}) | {pt:.1f} | {kt:.1f} | {kt / pt:.2f} | "
              f"{'met' if kt <= 0.8 * pt else 'NOT met'} | {'' if fixed is None else f'{fixed:.1f}'} |")


if __name__ == "__main__":
    main()
