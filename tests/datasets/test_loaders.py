"""kfuse.datasets: the wheel-bundled loaders against the published figures."""

import numpy as np
import pytest

import kfuse.datasets as kd
from kfuse.datasets.ucr import read_ts
from kfuse.datasets.wheels import EXTRA, package_dir, wheel_file

# (train rows, test rows, length, classes): the UCR archive's published figures
UCR = {
    "ArrowHead": (36, 175, 251, 3),
    "GunPoint": (50, 150, 150, 2),
    "ItalyPowerDemand": (67, 1029, 24, 2),
}


@pytest.mark.parametrize("name", sorted(UCR))
def test_ucr_published_split(name):
    n_train, n_test, length, n_classes = UCR[name]
    data = kd.load_ucr(name)
    (x, y), (x_test, y_test) = data
    assert x["series"].shape == (n_train, length, 1) and x["series"].dtype == np.float32
    assert x_test["series"].shape == (n_test, length, 1)
    assert data.num_classes == n_classes
    assert set(np.unique(y)) == set(range(n_classes)) == set(np.unique(y_test))
    assert not np.isnan(x["series"]).any()
    # UCR series are z-normalised per series
    np.testing.assert_allclose(x["series"].mean(axis=1), 0.0, atol=1e-3)


def test_basic_motions_two_modalities():
    data = kd.load_basic_motions()
    assert data.input_names == ["accelerometer", "gyroscope"]
    assert data.input_shapes == {"accelerometer": (100, 3), "gyroscope": (100, 3)}
    assert len(data.y_train) == 40 and len(data.y_test) == 40
    assert data.classes == ("Standing", "Running", "Walking", "Badminton")
    assert np.bincount(data.y_train).tolist() == [10, 10, 10, 10]
    both = kd.load_ucr("BasicMotions")
    np.testing.assert_array_equal(both.x_train["series"][..., 3:], data.x_train["gyroscope"])


def test_published_results_default_split():
    assert kd.published_results("GunPoint") == {"InceptionTime": 1.0, "HC2": 1.0}
    arrow = kd.published_results("ArrowHead", classifiers=("InceptionTime",))
    assert arrow["InceptionTime"] == pytest.approx(151 / 175)  # 151 of 175 test series
    with pytest.raises(ValueError, match="no row 'Nope'"):
        kd.published_results("Nope")


def test_unknown_ucr_name_suggests():
    with pytest.raises(ValueError, match=r"did you mean \['GunPoint'\]"):
        kd.load_ucr("GunPiont")


def test_read_ts_multivariate_missing(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(
        "# comment\n@problemName toy\n@classLabel true a b\n@data\n"
        "1,2,3:4,5,6:b\n0,?,1:1,1,1:a\n"
    )
    x, labels, classes = read_ts(path)
    assert x.shape == (2, 3, 2) and classes == ("a", "b")
    np.testing.assert_array_equal(x[0], [[1, 4], [2, 5], [3, 6]])
    assert np.isnan(x[1, 1, 0]) and labels.tolist() == ["b", "a"]
    path.write_text("@data\n1,x:a\n")
    with pytest.raises(ValueError, match="line 2"):
        read_ts(path)


def test_digits_sklearn_example_split():
    from sklearn.datasets import load_digits

    data = kd.load_digits()
    (x, y), (x_test, y_test) = data
    assert x["image"].shape == (898, 8, 8, 1) and x_test["image"].shape == (899, 8, 8, 1)
    assert data.num_classes == 10 and x["image"].max() == 1.0
    ref = load_digits()
    np.testing.assert_array_equal(np.concatenate([y, y_test]), ref.target)
    np.testing.assert_allclose(x_test["image"][-1, ..., 0] * 16, ref.images[-1])


def test_rotten_tomatoes_fresh_vs_rotten():
    data = kd.load_rotten_tomatoes()
    (x, y), (x_test, y_test) = data
    assert len(y) + len(y_test) == 2455 + 2411
    assert int(np.concatenate([y, y_test]).sum()) == 2455  # fresh = 1
    assert data.classes == ("rotten", "fresh") and isinstance(x["text"][0], str)
    train_movies, test_movies = set(data.info["movie_train"]), set(data.info["movie_test"])
    assert not train_movies & test_movies and len(train_movies | test_movies) == 156
    assert len(test_movies) == round(0.2 * 156)
    again = kd.load_rotten_tomatoes()
    np.testing.assert_array_equal(again.y_test, y_test)


def test_sunspots_and_co2_values():
    s = kd.load_sunspots()
    assert len(s) == 309 and (s.index[0], s.index[-1]) == (1700, 2008)
    assert s.values[:2].tolist() == [5.0, 11.0] and len(s.train) == 221 and s.period == 11
    weekly = kd.load_co2("weekly")
    assert len(weekly) == 2284 and weekly.info["n_missing"] == 59
    assert weekly.values[0] == 316.1 and not np.isnan(weekly.values).any()
    monthly = kd.load_co2()
    assert len(monthly) == 526 and monthly.period == 12 and len(monthly.test) == 120
    assert str(monthly.index[0]) == "1958-03" and monthly.values[0] == 316.1
    with pytest.raises(ValueError, match="'daily'"):
        kd.load_co2("daily")


def test_lag_windows_against_loop():
    values = np.arange(20.0) ** 1.5
    x, y, origins = kd.lag_windows(values, lags=4, horizon=3, start=10)
    assert origins[0] == 10 and origins[-1] == 17 and x.shape == (8, 4) and y.shape == (8, 3)
    for row, o in enumerate(origins):
        np.testing.assert_allclose(x[row], values[o - 4 : o], rtol=1e-6)
        np.testing.assert_array_equal(y[row], values[o : o + 3])
    with pytest.raises(ValueError, match="no window"):
        kd.lag_windows(np.arange(3.0), lags=3)


def test_missing_package_names_the_extra(tmp_path):
    with pytest.raises(ModuleNotFoundError, match=r'pip install "kfuse\[datasets\]"') as info:
        package_dir("kfuse_no_such_wheel", "load_ucr")
    assert "kfuse_no_such_wheel" in str(info.value) and EXTRA in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing from the installed 'numpy'"):
        wheel_file("numpy", "no/such/file.csv", "load_co2")
