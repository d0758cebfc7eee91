"""Checkpoints under a Stacker's `work_dir`: fold models, out-of-fold blocks, refit models.

Layout (on `kfuse.utils.run_store.RunStore`, the one store of every kfuse work_dir)::

    work_dir/run.json                 the configuration fingerprint of the run
    work_dir/fold_<k>/<branch>.keras  the base trained without fold k
    work_dir/fold_<k>/<branch>.npz    its meta-features on fold k's rows and its score
    work_dir/refit/<branch>.keras     the base retrained on every row

Every file is written to a unique temporary name and renamed, so a crash never leaves
half a file; a fold is done when its `.npz` exists (written after the model).
"""

import numpy as np

from kfuse.utils.run_store import DAMAGE, FINGERPRINT, DamagedCheckpointError, RunStore, damaged

__all__ = ["DAMAGE", "FINGERPRINT", "DamagedCheckpointError", "WorkDir", "damaged"]


class WorkDir(RunStore):
    """Checkpoint store of one Stacker run; `None` path keeps nothing on disk."""

    def __init__(self, path, fingerprint):
        super().__init__(path, fingerprint, who="Stacker")

    # -- folds --------------------------------------------------------------------------
    def has_fold(self, k, branch):
        return self.has(f"fold_{k}/{branch}")

    def save_fold(self, k, branch, model, features, score):
        self.save(f"fold_{k}/{branch}", model, features=features, score=np.float64(score))

    def load_fold(self, k, branch, need_model=True):
        """(model or None, features, score) of a finished fold."""
        model, arrays = self.load(f"fold_{k}/{branch}", need_model, f"retrains fold {k} of branch '{branch}'")
        try:
            return model, arrays["features"], float(arrays["score"])
        except DAMAGE as error:
            raise damaged(self._file(f"fold_{k}", f"{branch}.npz"), self.path, error,
                          f"retrains fold {k} of branch '{branch}'") from None

    # -- refit --------------------------------------------------------------------------
    def has_refit(self, branch):
        return self.has_model(f"refit/{branch}")

    def save_refit(self, branch, model):
        self.save_model(f"refit/{branch}", model)

    def load_refit(self, branch):
        return self.load_model(f"refit/{branch}")
