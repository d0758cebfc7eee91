"""Checkpoints under `work_dir`: fold models, out-of-fold blocks, refit models.

Layout::

    work_dir/run.json                 the configuration fingerprint of the run
    work_dir/fold_<k>/<branch>.keras  the base trained without fold k
    work_dir/fold_<k>/<branch>.npz    its meta-features on fold k's rows and its score
    work_dir/refit/<branch>.keras     the base retrained on every row

Every file is written to a temporary name and renamed, so a crash never leaves half a
file; a fold is done when its `.npz` exists (written after the model).
"""

import json
import os

import keras
import numpy as np

FINGERPRINT = "run.json"


class WorkDir:
    """Checkpoint store of one Stacker run; `None` path keeps nothing on disk."""

    def __init__(self, path, fingerprint):
        self.path = None if path is None else os.fspath(path)
        self.fingerprint = fingerprint
        if self.path is not None:
            self._claim()

    def _claim(self):
        os.makedirs(self.path, exist_ok=True)
        file = os.path.join(self.path, FINGERPRINT)
        if os.path.exists(file):
            with open(file) as f:
                old = json.load(f)
            if old != self.fingerprint:
                keys = sorted(set(old) | set(self.fingerprint))
                differ = [k for k in keys if old.get(k) != self.fingerprint.get(k)]
                raise ValueError(
                    f"Stacker: work_dir {self.path!r} holds a run of a different configuration "
                    f"(differs in: {', '.join(differ)}); kfuse will not mix the two runs. "
                    f"Use another work_dir, or delete {self.path!r} to start over."
                )
            return
        self._write_json(file, self.fingerprint)

    @property
    def enabled(self):
        return self.path is not None

    def _file(self, *parts):
        return os.path.join(self.path, *parts)

    @staticmethod
    def _write_json(file, value):
        tmp = file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(value, f, indent=1, sort_keys=True)
        os.replace(tmp, file)

    # -- folds --------------------------------------------------------------------------
    def has_fold(self, k, branch):
        return self.enabled and os.path.exists(self._file(f"fold_{k}", f"{branch}.npz"))

    def save_fold(self, k, branch, model, features, score):
        if not self.enabled:
            return
        folder = self._file(f"fold_{k}")
        os.makedirs(folder, exist_ok=True)
        self._save_model(model, os.path.join(folder, f"{branch}.keras"))
        tmp = os.path.join(folder, f"{branch}.tmp.npz")
        np.savez(tmp, features=features, score=np.float64(score))
        os.replace(tmp, os.path.join(folder, f"{branch}.npz"))

    def load_fold(self, k, branch, need_model=True):
        """(model or None, features, score) of a finished fold."""
        folder = self._file(f"fold_{k}")
        with np.load(os.path.join(folder, f"{branch}.npz")) as d:
            features, score = d["features"], float(d["score"])
        model = self._load_model(os.path.join(folder, f"{branch}.keras")) if need_model else None
        return model, features, score

    # -- refit --------------------------------------------------------------------------
    def has_refit(self, branch):
        return self.enabled and os.path.exists(self._file("refit", f"{branch}.keras"))

    def save_refit(self, branch, model):
        if self.enabled:
            os.makedirs(self._file("refit"), exist_ok=True)
            self._save_model(model, self._file("refit", f"{branch}.keras"))

    def load_refit(self, branch):
        return self._load_model(self._file("refit", f"{branch}.keras"))

    # -- models -------------------------------------------------------------------------
    @staticmethod
    def _save_model(model, file):
        tmp = file[: -len(".keras")] + ".tmp.keras"
        model.save(tmp)
        os.replace(tmp, file)

    @staticmethod
    def _load_model(file):
        return keras.saving.load_model(file, compile=False)
