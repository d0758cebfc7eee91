"""The main job: three MNIST-1D bases fused into one model, compared, exported.

Run it with `kfuse demo` (or `make demo`). Steps:

1. build MNIST-1D offline (4,000 train, 1,000 test);
2. split the training rows: 80% train the bases, 20% are held out for the meta-learner
   (so it never learns from predictions the bases made on their own training data);
3. train a CNN, a GRU and an MLP, save each to `saved_models/mnist1d_<name>.keras`;
4. stack the saved files with kfuse: frozen bases handing over probabilities, fused by
   a small regularised meta-learner trained on the held-out rows;
5. print each base's and the fused model's test accuracy beside the paper's figures;
6. export the fused model to `saved_models/mnist1d_stack/<version>/` for TF Serving.
"""

import os
import time

import keras
import numpy as np
from keras import layers

from kfuse.datasets.mnist1d import MNIST1D_PAPER_ACCURACY, holdout_split, load_mnist1d

SIGNAL = 40
CLASSES = 10


def build_cnn(name="cnn"):
    """3 x (Conv1D(64, 3) + MaxPool(2)), flattened features, dropout, softmax out."""
    inp = keras.Input((SIGNAL,), name="signal")
    x = layers.Reshape((SIGNAL, 1))(inp)
    for i in range(3):
        x = layers.Conv1D(64, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling1D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="features")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    out = layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=name)


def build_gru(name="gru"):
    """GRU(64) over the signal, softmax out."""
    inp = keras.Input((SIGNAL,), name="signal")
    x = layers.Reshape((SIGNAL, 1))(inp)
    x = layers.GRU(64, name="gru")(x)
    out = layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=name)


def build_mlp(name="mlp"):
    """MLP(100, 100), softmax out."""
    inp = keras.Input((SIGNAL,), name="signal")
    x = layers.Dense(100, activation="relu", name="hidden0")(inp)
    x = layers.Dense(100, activation="relu", name="hidden1")(x)
    out = layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=name)


BASES = {"cnn": build_cnn, "gru": build_gru, "mlp": build_mlp}
EPOCHS = {"cnn": 40, "gru": 60, "mlp": 60}
QUICK_EPOCHS = {"cnn": 8, "gru": 4, "mlp": 8}


def train_base(name, x, y, epochs, seed=0, verbose=0, learning_rate=3e-3):
    keras.utils.set_random_seed(seed)
    model = BASES[name]()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=100, verbose=verbose)
    return model


def accuracy(probabilities_or_logits, y):
    return float(np.mean(np.argmax(probabilities_or_logits, axis=-1) == y))


def fuse_saved_bases(paths, x_holdout, y_holdout, epochs, seed=0, verbose=0, l2=6e-4):
    """Stack saved bases (frozen, probabilities out) under an L2-regularised linear head.

    The head sees only `x_holdout`, rows the bases never trained on. On few held-out
    rows a small regularised meta-learner on probabilities generalises best (see
    REFERENCES.md: logistic regression on probabilities beat a free Dense on logits).
    """
    import kfuse

    keras.utils.set_random_seed(seed)
    branches = [
        kfuse.Branch(path, name=name, inputs="signal", trainable=False, output="probabilities")
        for name, path in paths.items()
    ]
    head = kfuse.layers.heads.Classification(CLASSES, kernel_regularizer=keras.regularizers.l2(l2))
    model = kfuse.stack(
        branches,
        fusion="concat",
        head=head,
        name="mnist1d_stack",
        optimizer=keras.optimizers.Adam(1e-2),
    )
    # the bases are frozen: train the head on their outputs, computed once
    model.fit_head(x_holdout, y_holdout, epochs=epochs, batch_size=80, verbose=verbose)
    return model


def run_demo(out_dir="saved_models", quick=False, seed=0, holdout=0.2, verbose=1, export=True):
    """Run the whole demo; returns a dict with the result rows and paths written."""
    say = print if verbose else (lambda *a, **k: None)
    keras_verbose = 2 if verbose else 0
    t0 = time.time()
    say("[1/5] building MNIST-1D offline (mnist1d package, default arguments)")
    (x, y), (x_test, y_test) = load_mnist1d()
    if quick:
        x, y = x[:1500], y[:1500]
    fit_idx, hold_idx = holdout_split(len(x), holdout, seed=seed, stratify=y)
    say(f"      {len(fit_idx)} rows train the bases, {len(hold_idx)} held out for the meta-learner, "
        f"{len(x_test)} test rows")
    epochs = QUICK_EPOCHS if quick else EPOCHS
    os.makedirs(out_dir, exist_ok=True)
    paths, rows = {}, []
    say("[2/5] training the bases")
    for step, name in enumerate(BASES):
        t = time.time()
        model = train_base(name, x[fit_idx], y[fit_idx], epochs[name], seed=seed + step,
                           verbose=keras_verbose if verbose > 1 else 0)
        paths[name] = os.path.join(out_dir, f"mnist1d_{name}.keras")
        model.save(paths[name])
        acc = accuracy(model.predict(x_test, verbose=0), y_test)
        rows.append({"model": name.upper(), "test accuracy": acc})
        say(f"      {name}: {epochs[name]} epochs, {time.time() - t:.1f}s, test accuracy {acc:.3f}"
            f" -> {paths[name]}")
    say("[3/5] fusing the saved bases (frozen, probabilities) with a meta-learner on held-out rows")
    t = time.time()
    fused = fuse_saved_bases(paths, x[hold_idx], y[hold_idx], epochs=10 if quick else 30, seed=seed)
    fused_acc = accuracy(fused.predict(x_test, verbose=0), y_test)
    rows.append({"model": "kfuse stack", "test accuracy": fused_acc})
    say(f"      fused in {time.time() - t:.1f}s, test accuracy {fused_acc:.3f}")
    say("[4/5] results (MNIST-1D test set)")
    say(format_table(rows))
    result = {"rows": rows, "bases": paths, "model": fused, "seconds": None}
    if export:
        from kfuse.export import export_saved_model

        say("[5/5] exporting the fused model for TF Serving")
        fused_path = os.path.join(out_dir, "mnist1d_stack.keras")
        fused.save(fused_path)
        result["export"] = export_saved_model(fused, os.path.join(out_dir, "mnist1d_stack"))
        result["keras_file"] = fused_path
        say(f"      {result['export']}  (and {fused_path})")
        result["report"] = write_report(paths, fused, x_test, y_test, out_dir)
        say(f"      comparison report: {result['report']}")
    result["seconds"] = time.time() - t0
    say(f"done in {result['seconds']:.0f}s")
    return result


def write_report(paths, fused, x_test, y_test, out_dir):
    """The comparison report (metrics, diversity, significance) beside the export."""
    from kfuse.evaluation import compare

    members = {name: keras.saving.load_model(path, compile=False) for name, path in paths.items()}
    members["kfuse stack"] = fused
    path = os.path.join(out_dir, "mnist1d_stack_report.html")
    compare(members, x_test, y_test).to_html(path)
    return path


def format_table(rows):
    """A plain-text table of the demo rows beside the MNIST-1D paper's figures."""
    paper = {"MLP": "MLP", "CNN": "CNN", "GRU": "GRU"}
    lines = [f"| {'model':<27} | {'test accuracy':>13} | {'paper':>6} |", f"|{'-' * 29}|{'-' * 15}|{'-' * 8}|"]
    for row in rows:
        ref = MNIST1D_PAPER_ACCURACY.get(paper.get(row["model"], ""), None)
        ref_text = f"{ref:.0%}" if ref is not None else ""
        lines.append(f"| {row['model']:<27} | {row['test accuracy']:>13.1%} | {ref_text:>6} |")
    for name in ("logistic regression", "human"):
        lines.append(f"| {'(paper) ' + name:<27} | {'':>13} | {MNIST1D_PAPER_ACCURACY[name]:>6.0%} |")
    return "\n".join(lines)
