"""Weight-space merging on MNIST-1D: soups and merges of fine-tuned copies; alignment barrier.

Network: CNN (3 x [Conv1D 32, kernel 5, stride 2] -> BatchNorm(momentum 0.9) -> ReLU,
Flatten, Dense 10),
Adam, batch 100; training rows 0-3199, validation 3200-3999, the 1,000 test rows for the table.
Part 1: pretrain one network (30 epochs, lr 3e-3); per seed, fine-tune K copies of it
(different seeds, so data orders, and learning rates 1e-4 / 3e-4 / 1e-3 / 3e-4, 3 epochs),
then compare on test accuracy: the best single copy (chosen on validation) and the best on
test, the uniform soup, the greedy soup (chosen on validation), and ties / dare_ties /
dare_linear / model_stock merges with the pretrained network as base. BatchNorm statistics of
every merge are recomputed on the training rows (``repair_data``).
Part 2, per seed: two networks from different initialisations; test accuracy at the midpoint
of the straight line between them, naive and after ``align``, each with and without
``repair_batchnorm``; barrier = mean end-point accuracy - midpoint accuracy.
Part 1b (transfer, the soups paper's setting: a pretrained model fine-tuned on a new task):
the network is pretrained on a shifted MNIST-1D (another generator seed, shear 1.2, twice the
noise), then each copy is fine-tuned 10 epochs on the default MNIST-1D training rows.
KFUSE_QUICK=1: one seed, 3 copies, few epochs. KFUSE_SEEDS (default 0,1,2) sets the seeds.
KFUSE_METHODS=dare_ties,dare_linear (parts 1 and 1b) computes only those merge rows (and the
pretrained / best-single rows they are read against), at full size: a rerun of some rows.
Arguments ``soups`` / ``transfer`` / ``barrier`` run one part (``soups`` runs 1 and 1b).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kfuse.datasets.mnist1d import load_mnist1d  # noqa: E402
from kfuse.merge import align, greedy_soup, interpolation_curve, merge, repair_batchnorm  # noqa: E402
from kfuse.merge.soups import accuracy  # noqa: E402

QUICK = os.environ.get("KFUSE_QUICK") == "1" or "--quick" in sys.argv
SEEDS = [0] if QUICK else [int(v) for v in os.environ.get("KFUSE_SEEDS", "0,1,2").split(",")]
PRE_EPOCHS, FT_EPOCHS, PAIR_EPOCHS = (3, 1, 3) if QUICK else (30, 3, 10)
FT = [(1e-4, 0), (3e-4, 1), (1e-3, 2), (3e-4, 3)][: 3 if QUICK else 4]
STEPS = 3 if QUICK else 5
TRANSFER_EPOCHS = 1 if QUICK else 10
ONLY = [m for m in os.environ.get("KFUSE_METHODS", "").split(",") if m]


def cnn():
    inp = keras.Input((40, 1))
    x = inp
    for _ in range(3):
        x = keras.layers.Conv1D(32, 5, strides=2, padding="same")(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(10)(x))


def fit(model, x, y, lr, epochs):
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=100, verbose=0)
    return model


def data():
    (x, y), (xt, yt) = load_mnist1d()
    x, xt = x[..., None], xt[..., None]
    return (x[:3200], y[:3200]), (x[3200:], y[3200:]), (xt, yt)


def acc(model, x, y):
    return accuracy(y, model.predict(x, batch_size=500, verbose=0))


def pretrained(train):
    keras.utils.set_random_seed(0)
    return fit(cnn(), *train, 3e-3, PRE_EPOCHS)


def shifted_data():
    """A related source task: MNIST-1D drawn with another generator seed, more shear and
    twice the noise (3,200 rows); the target task is the default MNIST-1D."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed, args.num_samples, args.shear_scale = 1, 4000, 1.2
    args.iid_noise_scale, args.corr_noise_scale = 4e-2, 0.5
    d = make_dataset(args)
    return d["x"].astype("float32")[..., None], d["y"].astype("int64")


def pretrained_shifted():
    keras.utils.set_random_seed(0)
    return fit(cnn(), *shifted_data(), 3e-3, PRE_EPOCHS)


def soups(seed, pre, train, val, test, ft_epochs=None):
    copies = []
    for lr, j in FT:
        keras.utils.set_random_seed(1000 * (seed + 1) + j)
        m = keras.models.clone_model(pre)
        m.set_weights(pre.get_weights())
        copies.append(fit(m, *train, lr, ft_epochs or FT_EPOCHS))
    val_acc = [acc(m, *val) for m in copies]
    test_acc = [acc(m, *test) for m in copies]
    row = {"pretrained": acc(pre, *test),
           "best single (val)": test_acc[int(np.argmax(val_acc))],
           "best single (test)": max(test_acc)}
    x_rep = train[0]
    best = keras.models.clone_model(copies[int(np.argmax(val_acc))])
    best.set_weights(copies[int(np.argmax(val_acc))].get_weights())
    if not ONLY:
        row["best single (val), BN repaired"] = acc(repair_batchnorm(best, x_rep), *test)
        row["uniform soup"] = acc(merge(copies, "linear", repair_data=x_rep), *test)
        greedy = greedy_soup(copies, validation_data=val, repair_data=x_rep)
        row["greedy soup"] = acc(greedy.model, *test)
        row["greedy ingredients"] = len(greedy.ingredients)
    for method, params in [("ties", {"density": 0.5}), ("dare_ties", {"density": 0.5}),
                           ("dare_linear", {"density": 0.5, "lambda_": 1.0 / len(copies)}),
                           ("model_stock", {})]:
        if ONLY and method not in ONLY:
            continue
        label = f"{method} ({', '.join(f'{k}={v:.2g}' for k, v in params.items())})" if params else method
        row[label] = acc(merge(copies, method, base=pre, repair_data=x_rep, **params), *test)
    return row


def barrier(seed, train, test):
    keras.utils.set_random_seed(100 + seed)
    a = fit(cnn(), *train, 1e-3, PAIR_EPOCHS)
    keras.utils.set_random_seed(200 + seed)
    b = fit(cnn(), *train, 1e-3, PAIR_EPOCHS)
    b_aligned = align(a, b, data=test[0][:200])
    b_act = align(a, b, data=train[0][:1000], method="activations")
    x_rep = train[0]
    curves = {
        "naive": interpolation_curve(a, b, test, steps=STEPS),
        "naive + repair": interpolation_curve(a, b, test, steps=STEPS, repair_data=x_rep),
        "align": interpolation_curve(a, b_aligned, test, steps=STEPS),
        "align + repair": interpolation_curve(a, b_aligned, test, steps=STEPS,
                                              repair_data=x_rep),
        "align (activations) + repair": interpolation_curve(a, b_act, test, steps=STEPS,
                                                            repair_data=x_rep),
    }
    ends = (curves["naive"].accuracy[0] + curves["naive"].accuracy[-1]) / 2
    return ends, {k: c.midpoint_accuracy for k, c in curves.items()}, curves


def main():
    parts = [a for a in sys.argv[1:] if not a.startswith("-")] or ["soups", "barrier"]
    train, val, test = data()
    if "soups" in parts:
        table_soups(train, val, test)
    if "soups" in parts or "transfer" in parts:
        table_soups(train, val, test, transfer=True)
    if "barrier" in parts:
        table_barrier(train, test)
    return 0


def table_soups(train, val, test, transfer=False):
    if transfer:
        pre = pretrained_shifted()
        rows = [soups(seed, pre, train, val, test, TRANSFER_EPOCHS) for seed in SEEDS]
        print(f"Part 1b: a CNN pretrained on shifted MNIST-1D, {len(FT)} copies fine-tuned "
              f"{TRANSFER_EPOCHS} epochs on MNIST-1D, test accuracy")
    else:
        pre = pretrained(train)
        rows = [soups(seed, pre, train, val, test) for seed in SEEDS]
        print(f"Part 1: fine-tuned copies of one pretrained CNN ({len(FT)} copies), test accuracy")
    print("| setup | " + " | ".join(f"seed {s}" for s in SEEDS) + " | mean |")
    print("|---|" + "---|" * (len(SEEDS) + 1))
    for key in rows[0]:
        vals = [r[key] for r in rows]
        fmt = (lambda v: f"{v:.0f}") if key == "greedy ingredients" else (lambda v: f"{100 * v:.1f}%")
        print(f"| {key} | " + " | ".join(fmt(v) for v in vals) + f" | {fmt(np.mean(vals))} |")
    if "greedy soup" in rows[0]:
        wins = sum(r["greedy soup"] >= r["best single (val)"] for r in rows)
        print(f"greedy soup >= best single (val) on {wins}/{len(rows)} seeds")
    print()


def table_barrier(train, test):
    print("Part 2: two CNNs from different initialisations, test accuracy at the midpoint")
    print("| seed | end points (mean) | naive | naive + repair | align | align + repair | "
          "barrier removed | align (activations) + repair | removed |")
    print("|---|---|---|---|---|---|---|---|---|")
    removed, removed_act = [], []
    for seed in SEEDS:
        ends, mids, _ = barrier(seed, train, test)
        gap = ends - mids["naive"]
        frac = (mids["align + repair"] - mids["naive"]) / gap if gap > 0 else float("nan")
        frac_act = (mids["align (activations) + repair"] - mids["naive"]) / gap
        removed.append(frac)
        removed_act.append(frac_act)
        print(f"| {seed} | {100 * ends:.1f}% | " + " | ".join(
            f"{100 * mids[k]:.1f}%" for k in ("naive", "naive + repair", "align", "align + repair"))
            + f" | {100 * frac:.0f}% | {100 * mids['align (activations) + repair']:.1f}% | "
            f"{100 * frac_act:.0f}% |")
    print(f"align (weight matching) + repair removes >= half of the barrier on "
          f"{sum(f >= 0.5 for f in removed)}/{len(removed)} seeds; activation matching + repair "
          f"on {sum(f >= 0.5 for f in removed_act)}/{len(removed_act)}")


if __name__ == "__main__":
    sys.exit(main())
