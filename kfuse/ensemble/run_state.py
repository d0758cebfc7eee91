"""`RunState`: the state of ONE training run in `work_dir`, saved per epoch, to resume it.

An ensemble trained in one run (`SWA` after every epoch; `SnapshotEnsemble` and
`FastGeometricEnsemble` after the warm-up and every cycle) keeps everything the rest of
the run depends on: the network's variables (`model.variables`: weights, BatchNorm
statistics and the random-seed state of layers such as Dropout), the optimizer's
variables (step count, moments), the phase and the epochs it has finished, plus any
arrays of its own (SWA's running average and its count). It is one `.npz` entry of the
work_dir's `kfuse.utils.run_store.RunStore` (written under a unique temporary name and moved
into place, so a crash leaves the previous epoch's state whole; a damaged file is
reported with its path). The configuration check is the store's `run.json`.
"""

import keras
import numpy as np

NAME = "run_state"


def _values(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


class RunState:
    """Save and load a run's state in a `RunStore` (nothing on disk when it is disabled)."""

    def __init__(self, store):
        self.store = store

    def save(self, model, phase, epoch, **arrays):
        """Keep `model`'s and its optimizer's variables, `phase`, `epoch` and named lists of arrays."""
        if not self.store.enabled:
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
        self.store.save_arrays(NAME, **state)

    def load(self):
        """The saved state as a dict (lists for list groups), or None when there is none."""
        flat = self.store.load_arrays(NAME, "starts the run over")
        if flat is None:
            return None
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
