"""Does notebook 11's MiniRocket head schedule reach lbfgs's optimum of its training objective?

The head is a softmax with L2 on standardised MiniRocket features: a convex problem, so a
Keras schedule is good enough when its training objective equals the one scikit-learn's
lbfgs reaches on the same features. Criterion on the training split only; test accuracy
is printed for information.

Usage: python scripts/check_minirocket_head.py LEARNING_RATE EPOCHS [DATASETS]
e.g.   python scripts/check_minirocket_head.py 1e-2 1000 ArrowHead,ItalyPowerDemand,GunPoint
"""

import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import kfuse  # noqa: E402
import kfuse.datasets as kd  # noqa: E402


def objective(features, y, l2, kernel, bias):
    """The Keras head's training loss: mean cross-entropy + l2 * |kernel|^2."""
    z = features @ kernel + bias
    z = z - z.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean() + l2 * (kernel**2).sum()


def check(name, seed, learning_rate, epochs):
    (x, y), (x_test, y_test) = kd.load_ucr(name)
    k = int(y.max()) + 1
    rocket = kfuse.features.MiniRocket(num_features=10_000, seed=seed)
    rocket.adapt(x["series"])
    scaler = StandardScaler().fit(np.asarray(rocket(x["series"])))
    train = scaler.transform(np.asarray(rocket(x["series"])))
    test = scaler.transform(np.asarray(rocket(x_test["series"])))
    c = LogisticRegressionCV(Cs=np.logspace(-4, 2, 7), cv=3, max_iter=3000).fit(train, y).C_[0]
    # as the notebook's rocket_l2: scikit-learn's objective as a mean loss; with 2 classes its
    # one vector w is the softmax's (-w/2, w/2), whose |W|^2 is |w|^2/2
    l2 = (2.0 if k == 2 else 1.0) / (2.0 * c * len(y))
    reference = LogisticRegression(C=c, max_iter=20_000, tol=1e-10).fit(train, y)
    if k == 2:
        w, b = reference.coef_[0] / 2, reference.intercept_[0] / 2
        ref_kernel, ref_bias = np.stack([-w, w], 1), np.array([-b, b])
    else:
        ref_kernel, ref_bias = reference.coef_.T, reference.intercept_

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((train.shape[1],))
    head = keras.layers.Dense(k, activation="softmax", kernel_regularizer=keras.regularizers.L2(l2))
    model = keras.Model(inputs, head(inputs))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy")
    start = time.perf_counter()
    model.fit(train, y, epochs=epochs, batch_size=128, verbose=0)
    kernel, bias = head.kernel.numpy(), head.bias.numpy()
    ours = np.mean(np.argmax(test @ kernel + bias, 1) == y_test)
    print(
        f"{name} seed {seed} C={c:g}: objective keras {objective(train, y, l2, kernel, bias):.4f} "
        f"lbfgs {objective(train, y, l2, ref_kernel, ref_bias):.4f}; test keras {ours:.3f} "
        f"lbfgs {reference.score(test, y_test):.3f} ({time.perf_counter() - start:.0f} s)",
        flush=True,
    )


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=FutureWarning)
    sets = sys.argv[3].split(",") if len(sys.argv) > 3 else ["ArrowHead", "ItalyPowerDemand", "GunPoint"]
    for dataset in sets:
        for seed in (0, 1, 2):
            check(dataset, seed, float(sys.argv[1]), int(sys.argv[2]))
