"""`RunState`: the state of ONE training run in `work_dir`, saved per epoch, to resume it.

An ensemble trained in one run (`SWA` after every epoch; `SnapshotEnsemble` and
`FastGeometricEnsemble` after the warm-up and every cycle) keeps everything the rest of
the run depends on: the network's variables (`model.variables`: weights, BatchNorm
statistics and the random-seed state of layers such as Dropout), the optimizer's
variables (step count, moments), the phase and the epochs it has finished, plus any
arrays of its own (SWA's running average and its count). It is one `.npz`, written to a
temporary file and moved into place with `os.replace`, so a crash leaves the previous
epoch's state whole. The configuration check is `base.MemberStore`'s `run.json`.
"""

import os

import keras
import numpy as np

FILE = "run_state.npz"


def _values(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


class RunState:
    """Save and load a run's state under `path` (nothing on disk when `path` is None)."""

    def __init__(self, path):
        self.file = None if path is None else os.path.join(os.fspath(path), FILE)

    def save(self, model, phase, epoch, **arrays):
        """Keep `model`'s and its optimizer's variables, `phase`, `epoch` and named lists of arrays."""
        if self.file is None:
            return
        state = {"phase": np.asarray(phase), "epoch": np.asarray(int(epoch))}
        groups = {"model": _values(model.variables), "optimizer": _values(model.optimizer.variables), **arrays}
        for group, values in groups.items():
            if not isinstance(values, (list, tuple)):
                state[group] = np.asarray(values)
                continue
            state[f"{group}.count"] = np.asarray(len(values))
            for i, value in enumerate(values):
                state[f"{group}.{i}"] = np.asarray(value)
        tmp = self.file + ".tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **state)
        os.replace(tmp, self.file)

    def load(self):
        """The saved state as a dict (lists for list groups), or None when there is none."""
        if self.file is None or not os.path.exists(self.file):
            return None
        with np.load(self.file) as d:
            flat = {k: d[k] for k in d.files}
        state = {}
        for key in flat:
            if key.endswith(".count"):
                group = key[: -len(".count")]
                state[group] = [flat[f"{group}.{i}"] for i in range(int(flat[key]))]
            elif "." not in key:
                state[key] = flat[key]
        state["phase"], state["epoch"] = str(state["phase"]), int(state["epoch"])
        return state

    @staticmethod
    def restore(model, state, who, optimizer=True):
        """Assign the saved model and optimizer variables (the optimizer built first).

        `optimizer=False` assigns the model's variables only: the run goes on with a new
        optimizer (a phase compiled afresh), as the uninterrupted run did."""
        groups = [("model", model.variables)]
        if optimizer:
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            groups.append(("optimizer", model.optimizer.variables))
        for group, variables in groups:
            values = state[group]
            if len(values) != len(variables):
                raise ValueError(
                    f"{who}: the run state in work_dir holds {len(values)} {group} variables but the "
                    f"network has {len(variables)}; it comes from another network. Delete the work_dir "
                    "to start over."
                )
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
