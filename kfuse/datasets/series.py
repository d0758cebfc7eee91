"""Forecasting series bundled in the statsmodels wheel (its CSV files), and lag windows.

Yearly sunspots (1700-2008) and weekly Mauna Loa CO2 (March 1958 - December 2001). The
CSVs are read directly (`statsmodels.datasets.get_rdataset` downloads; it is never used).
"""

import numbers
from dataclasses import dataclass, field

import numpy as np

from kfuse.datasets.wheels import wheel_file


@dataclass(frozen=True)
class Series:
    """One univariate series: `values` (float64), their `index`, the seasonal `period`.

    `test_start` is the first position of the test segment (see each loader), so
    `values[:test_start]` is all a forecaster may train on.

    Example:

    ```python
    import numpy as np
    from kfuse.datasets import Series

    s = Series("toy", np.arange(10.0), np.arange(10), 2, "yearly", 8, "memory")
    s.train.shape, s.test.tolist()  # (8,), [8.0, 9.0]
    ```
    """

    name: str
    values: np.ndarray
    index: np.ndarray
    period: int
    frequency: str
    test_start: int
    source: str
    info: dict = field(default_factory=dict)

    @property
    def train(self):
        return self.values[: self.test_start]

    @property
    def test(self):
        return self.values[self.test_start :]

    def __len__(self):
        return len(self.values)

    def __repr__(self):
        return (
            f"Series({self.name!r}, {self.frequency}, n={len(self.values)}, period={self.period}, "
            f"train={self.test_start}, test={len(self.values) - self.test_start})"
        )


def _read_csv(path):
    import pandas as pd

    return pd.read_csv(path)


def load_sunspots(test_start_year=1921):
    """Yearly mean sunspot numbers 1700-2008 (309 values) from the statsmodels wheel.

    The test segment starts in `test_start_year` (default 1921: Zhang (2003) trains on
    1700-1920). `period` is 11, the solar cycle, used by the seasonal naive forecast.

    Example:

    ```python
    import kfuse.datasets

    s = kfuse.datasets.load_sunspots()
    len(s), s.index[0], s.index[-1], len(s.train)  # 309, 1700, 2008, 221
    ```
    """
    path = wheel_file("statsmodels", "datasets/sunspots/sunspots.csv", "load_sunspots")
    frame = _read_csv(path)
    years = frame["YEAR"].to_numpy().astype("int64")
    if not years[0] <= test_start_year <= years[-1]:
        raise ValueError(
            f"load_sunspots: test_start_year must lie in [{years[0]}, {years[-1]}]; received {test_start_year}"
        )
    return Series(
        name="sunspots",
        values=frame["SUNACTIVITY"].to_numpy().astype("float64"),
        index=years,
        period=11,
        frequency="yearly",
        test_start=int(np.searchsorted(years, test_start_year)),
        source=str(path),
    )


def load_co2(frequency="monthly", test_years=10):
    """Mauna Loa CO2 (ppmv), weekly 1958-2001, from the statsmodels wheel.

    The CSV has 2,284 weeks, 59 of them missing. `frequency="weekly"` fills those by
    linear interpolation (`info["n_missing"]` says how many); `"monthly"` averages the
    observed weeks of each calendar month (526 months) and interpolates the months with
    no observed week (`info["empty_months"]`). The last `test_years` years form the
    test segment.

    Example:

    ```python
    import kfuse.datasets

    s = kfuse.datasets.load_co2()
    len(s), s.period, len(s.test)  # 526, 12, 120
    ```
    """
    if frequency not in ("weekly", "monthly"):
        raise ValueError(f"load_co2: frequency must be 'weekly' or 'monthly'; received {frequency!r}")
    path = wheel_file("statsmodels", "datasets/co2/co2.csv", "load_co2")
    frame = _read_csv(path)
    dates = np.array([np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}") for d in frame["date"].astype(str)])
    raw = frame["co2"].to_numpy().astype("float64")
    missing = np.isnan(raw)
    if frequency == "weekly":
        steps = np.arange(len(raw))
        values = raw.copy()
        values[missing] = np.interp(steps[missing], steps[~missing], raw[~missing])
        index, period = dates, 52
    else:
        months = dates.astype("datetime64[M]")
        index = np.unique(months)
        observed = [raw[(months == m) & ~missing] for m in index]
        values = np.array([w.mean() if len(w) else np.nan for w in observed])
        empty = np.isnan(values)
        steps = np.arange(len(values))
        values[empty] = np.interp(steps[empty], steps[~empty], values[~empty])
        period = 12
    return Series(
        name="co2",
        values=values,
        index=index,
        period=period,
        frequency=frequency,
        test_start=len(values) - test_years * period,
        source=str(path),
        info={"n_missing": int(missing.sum()), "empty_months": int(empty.sum()) if frequency == "monthly" else 0},
    )


def _whole(value, name):
    """``value`` as an int (a whole float such as 3.0 too); anything else is refused."""
    whole = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and float(value).is_integer())
    if isinstance(value, (bool, np.bool_)) or not whole:
        raise ValueError(
            f"lag_windows: {name} must be a whole number of time steps; received {value!r} "
            f"({type(value).__name__})"
        )
    return int(value)


def lag_windows(values, lags, horizon=1, start=None):
    """Supervised pairs from a series: the `lags` last values -> the next `horizon`.

    Returns `(x, y, origins)`: x of shape (n, lags) float32, y of shape (n, horizon),
    and for each row the position of its first target (`values[origin]` is `y[:, 0]`).
    `start` keeps only rows whose first target is at or after that position.

    Example:

    ```python
    import numpy as np
    from kfuse.datasets import lag_windows

    x, y, origins = lag_windows(np.arange(10.0), lags=3, horizon=2)
    x[0], y[0], origins[0]  # [0, 1, 2], [3, 4], 3
    ```
    """
    values = np.asarray(values, dtype="float64")
    if values.ndim != 1:
        raise ValueError(f"lag_windows: values must be one series (1-D); received shape {values.shape}")
    lags, horizon = _whole(lags, "lags"), _whole(horizon, "horizon")
    start = None if start is None else _whole(start, "start")
    if lags < 1 or horizon < 1:
        raise ValueError(f"lag_windows: lags and horizon must be >= 1; received {lags}, {horizon}")
    origins = np.arange(lags, len(values) - horizon + 1)
    if start is not None:
        origins = origins[origins >= start]
    if len(origins) == 0:
        raise ValueError(
            f"lag_windows: a series of {len(values)} values has no window of {lags} lags "
            f"and {horizon} targets" + (f" from position {start}" if start is not None else "")
        )
    x = np.stack([values[o - lags : o] for o in origins]).astype("float32")
    y = np.stack([values[o : o + horizon] for o in origins])
    return x, y, origins
