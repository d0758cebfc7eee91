"""SWA resumes from work_dir after a real crash and ends with the weights of an uninterrupted run."""

import os

import numpy as np
import pytest

from kfuse.ensemble import SWA
from tests.ensemble import Crash
from tests.ensemble import resumable_net as net

X = np.random.default_rng(0).normal(size=(96, 6)).astype("float32")
Y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype("int64")
EPOCHS, SWA_EPOCHS = 3, 4


def swa(callback, work_dir=None, **kwargs):
    settings = dict(epochs=EPOCHS, swa_epochs=SWA_EPOCHS, batch_size=16, learning_rate=1e-2, swa_learning_rate=5e-3,
                    fit_params={"callbacks": [callback]}, random_state=7, work_dir=work_dir)
    return SWA(net, **{**settings, **kwargs})


@pytest.fixture(scope="module")
def uninterrupted():
    counter = Crash()
    fitted = swa(counter).fit(X, Y)
    assert counter.begun == EPOCHS + SWA_EPOCHS
    return [np.asarray(w) for w in fitted.network_.get_weights()]


@pytest.mark.parametrize("crash_at", [2, EPOCHS + 1, EPOCHS + 3], ids=["warm-up", "first-swa-epoch", "mid-swa"])
def test_resume_after_a_crash_ends_with_the_uninterrupted_weights(uninterrupted, tmp_path, crash_at):
    work = str(tmp_path / "swa")
    with pytest.raises(RuntimeError, match=f"crash at epoch {crash_at}"):
        swa(Crash(at=crash_at), work).fit(X, Y)
    assert os.path.exists(os.path.join(work, "run_state.npz"))
    assert not [f for f in os.listdir(work) if f.endswith(".tmp")]
    counter = Crash()
    resumed = swa(counter, work).fit(X, Y)
    # it continued: only the epochs the crashed run had not finished were trained again
    assert counter.begun == EPOCHS + SWA_EPOCHS - (crash_at - 1)
    assert resumed.n_averaged_ == SWA_EPOCHS
    for got, expected in zip(resumed.network_.get_weights(), uninterrupted, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_finished_run_reloads_without_training(uninterrupted, tmp_path):
    work = str(tmp_path / "swa")
    swa(Crash(), work).fit(X, Y)
    counter = Crash()
    again = swa(counter, work).fit(X, Y)
    assert counter.begun == 0
    for got, expected in zip(again.network_.get_weights(), uninterrupted, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_work_dir_of_another_configuration_is_refused(tmp_path):
    work = str(tmp_path / "swa")
    with pytest.raises(RuntimeError):
        swa(Crash(at=2), work).fit(X, Y)
    with pytest.raises(ValueError, match="different configuration.*delete"):
        swa(Crash(), work, swa_epochs=SWA_EPOCHS + 1).fit(X, Y)
