"""Does notebook 12's linear member (`ar`: Dense(H) on the lag window) reach least squares?

The member is a direct AR(LAGS): a linear map trained with MSE, a convex problem whose
optimum `numpy.linalg.lstsq` gives in closed form. A Keras schedule is good enough when its
training MSE equals that optimum's and its weights do not depend on the seed. Criterion on
the training windows only; the test MASE is printed for information.

Usage: python scripts/check_linear_member.py SCHEDULE [SERIES]
SCHEDULE: "constant" (Adam 1e-2, batch 32, 180 epochs) or "cosine:LR:EPOCHS" (full-batch
Adam, LR cosine-decayed to 0 over EPOCHS epochs, one step per epoch)
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kfuse.datasets as kd  # noqa: E402

SERIES = {"sunspots": (lambda: kd.load_sunspots(), 9, 5, False), "co2": (lambda: kd.load_co2("monthly"), 36, 12, True)}


def windows(series, lags, horizon, relative):
    """The notebook's standardised lag windows (training rows) and test rows in the series' units."""
    x, y, origins = kd.lag_windows(series.values, lags, horizon)
    if relative:
        scale, last = float(np.std(np.diff(series.train))), x[:, -1:].astype("float64")
    else:
        scale, last = float(np.std(series.train)), np.full((len(x), 1), np.mean(series.train))
    xs, ys = ((x - last) / scale).astype("float32"), ((y - last) / scale).astype("float32")
    train, test = origins + horizon <= series.test_start, origins >= series.test_start
    return xs[train], ys[train], xs[test], y[test], last[test], scale


def fit(x, y, schedule, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x.shape[1],))
    model = keras.Model(inputs, keras.layers.Dense(y.shape[1])(inputs))
    if schedule == "constant":
        optimizer, epochs, batch = keras.optimizers.Adam(1e-2), 180, 32
    else:
        _, rate, epochs = schedule.split(":")
        epochs, batch = int(epochs), 1 << 20
        optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(float(rate), epochs))
    model.compile(optimizer, "mse")
    model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
    return model


def main(schedule, names):
    for name in names:
        load, lags, horizon, relative = SERIES[name]
        series = load()
        x, y, x_test, y_test, last, scale = windows(series, lags, horizon, relative)
        design = np.hstack([x, np.ones((len(x), 1), "float32")]).astype("float64")
        coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
        optimum = np.mean((design @ coefficients - y) ** 2)
        naive = np.mean(np.abs(np.diff(series.train)))
        test_design = np.hstack([x_test, np.ones((len(x_test), 1), "float32")]).astype("float64")
        exact = np.mean(np.abs(test_design @ coefficients * scale + last - y_test)) / naive
        print(f"{name}: least squares itself, test MASE {exact:.3f}", flush=True)
        for seed in (0, 1, 2):
            start = time.perf_counter()
            model = fit(x, y, schedule, seed)
            mse = np.mean((model.predict(x, verbose=0) - y) ** 2)
            forecast = model.predict(x_test, verbose=0) * scale + last
            mase = np.mean(np.abs(forecast - y_test)) / naive
            print(f"{name} seed {seed} {schedule}: training MSE {mse:.5f} vs least squares {optimum:.5f}; "
                  f"test MASE {mase:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2].split(",") if len(sys.argv) > 2 else list(SERIES))
