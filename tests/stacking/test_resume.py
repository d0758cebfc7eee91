"""Checkpoints under work_dir: a crash in fold 3, then a second fit that resumes."""

import os

import keras
import numpy as np
import pytest

import kfuse
from tests.stacking import blobs, small_model

FIT = {"epochs": 3, "batch_size": 16, "learning_rate": 1e-2}


class CrashInThirdFold(keras.callbacks.Callback):
    """Counts trainings; raises when the third one starts (fold 3) while armed."""

    def __init__(self):
        super().__init__()
        self.trainings = 0
        self.armed = True

    def on_train_begin(self, logs=None):
        self.trainings += 1
        if self.armed and self.trainings == 3:
            raise RuntimeError("simulated crash in fold 3")


def stacker(callback, **kwargs):
    branch = kfuse.Branch(
        small_model("mlp"), name="mlp", inputs="signal", fit={**FIT, "callbacks": [callback]}
    )
    return kfuse.Stacker(
        [branch], head=3, cv=3, refit=False, verbose=0, meta_fit={"epochs": 20}, **kwargs
    )


@pytest.mark.slow
def test_second_fit_resumes_after_a_crash_in_fold_3(tmp_path):
    x, y = blobs(60)
    crash = CrashInThirdFold()
    with pytest.raises(RuntimeError, match="fold 3"):
        stacker(crash, work_dir=tmp_path).fit(x, y)
    done = sorted(p for p in os.listdir(tmp_path) if p.startswith("fold_"))
    assert done == ["fold_0", "fold_1"]  # fold 3 (index 2) started, never finished
    assert not (tmp_path / "fold_2" / "mlp.npz").exists()

    crash.armed = False
    crash.trainings = 0
    resumed = stacker(crash, work_dir=tmp_path).fit(x, y)
    assert crash.trainings == 1  # only the unfinished fold trained again
    assert (tmp_path / "fold_2" / "mlp.npz").exists()

    # the same seed without checkpoints gives the same out-of-fold predictions: the
    # resumed run equals an uninterrupted one
    counter = CrashInThirdFold()
    counter.armed = False
    fresh = stacker(counter).fit(x, y)
    assert counter.trainings == 3
    np.testing.assert_allclose(
        resumed.oof_predictions_["mlp"], fresh.oof_predictions_["mlp"], atol=1e-5
    )
    assert resumed.cv_scores_["mlp"] == pytest.approx(fresh.cv_scores_["mlp"])
    np.testing.assert_allclose(resumed.predict(x), fresh.predict(x), atol=1e-4)
