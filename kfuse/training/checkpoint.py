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
import zipfile

import keras
import numpy as np

FINGERPRINT = "run.json"
#: what reading a truncated or overwritten checkpoint raises
DAMAGE = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, json.JSONDecodeError)


class DamagedCheckpointError(ValueError):
    """A checkpoint file in a Stacker `work_dir` exists but cannot be read."""


def damaged(file, work_dir, error, what="retrains that part"):
    return DamagedCheckpointError(
        f"Stacker: the checkpoint file {file!r} is damaged and cannot be read "
        f"({type(error).__name__}: {str(error)[:160]}); it was probably cut short by a crash "
        f"or a full disk. Delete it and fit again (kfuse {what}), or delete the work_dir "
        f"{work_dir!r} to start over."
    )


class WorkDir:
    """Checkpoint store of one Stacker run; `None` path keeps nothing on disk."""

    def __init__(self, path, fingerprint):
        self.path = None if path is None else os.fspath(path)
        self.fingerprint = fingerprint
        if self.path is not None:
            self._claim()

    def _claim(self):
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ValueError(
                f"Stacker: work_dir {self.path!r} is a file, not a folder; kfuse keeps its "
                "checkpoints in a folder there. Pass a folder path (a new one or a previous run's)."
            )
        os.makedirs(self.path, exist_ok=True)
        file = os.path.join(self.path, FINGERPRINT)
        if os.path.exists(file):
            try:
                with open(file) as f:
                    old = json.load(f)
                if not isinstance(old, dict):
                    raise ValueError(f"expected a JSON object, found {type(old).__name__}")
            except DAMAGE as error:
                raise damaged(file, self.path, error, "rewrites it and checks every fold") from None
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
        folder = self.enabled and self._file(f"fold_{k}")  # done: both files (a deleted one retrains)
        return bool(folder) and all(os.path.exists(os.path.join(folder, f"{branch}.{e}")) for e in ("npz", "keras"))

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
        file = os.path.join(folder, f"{branch}.npz")
        try:
            with np.load(file) as d:
                features, score = d["features"], float(d["score"])
        except DAMAGE as error:
            raise damaged(file, self.path, error, f"retrains fold {k} of branch '{branch}'") from None
        model_file = os.path.join(folder, f"{branch}.keras")
        if need_model:
            return self._load_model(model_file, self.path), features, score
        if not zipfile.is_zipfile(model_file):  # not loaded now, but a later refit=False run would
            raise damaged(model_file, self.path, ValueError("not a complete zip archive"),
                          f"retrains fold {k} of branch '{branch}'")
        return None, features, score

    # -- refit --------------------------------------------------------------------------
    def has_refit(self, branch):
        return self.enabled and os.path.exists(self._file("refit", f"{branch}.keras"))

    def save_refit(self, branch, model):
        if self.enabled:
            os.makedirs(self._file("refit"), exist_ok=True)
            self._save_model(model, self._file("refit", f"{branch}.keras"))

    def load_refit(self, branch):
        return self._load_model(self._file("refit", f"{branch}.keras"), self.path)

    # -- models -------------------------------------------------------------------------
    @staticmethod
    def _save_model(model, file):
        tmp = file[: -len(".keras")] + ".tmp.keras"
        model.save(tmp)
        os.replace(tmp, file)

    @staticmethod
    def _load_model(file, work_dir):
        if not os.path.isfile(file):
            raise DamagedCheckpointError(
                f"Stacker: the checkpoint {file!r} is missing though its fold is marked done; "
                f"delete the fold's .npz next to it and fit again, or delete {work_dir!r} to start over."
            )
        try:
            return keras.saving.load_model(file, compile=False)
        except DAMAGE as error:
            raise damaged(file, work_dir, error, "retrains that model") from None
