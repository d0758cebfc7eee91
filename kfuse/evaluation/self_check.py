"""compare()'s self-check: does each branch of a fused model still compute its base?

A branch copies its base exactly (weights and adapted preprocessing state), so when
`compare` is given a fused model and, under a branch's name, that branch's base, their
outputs on the same rows must agree to float noise. A larger gap means the copy lost
state (an un-adapted vectorizer, normalisation statistics left at 0 / 1): the report
says so instead of scoring a silently different model.
"""

import keras

from kfuse.branches import branch_base_differences
from kfuse.evaluation.predictions import fused_model
from kfuse.inputs import is_dataset

#: the largest branch-vs-base gap read as float noise
TOLERANCE = 1e-4


def branch_drift(models, x, batch_size=256):
    """{fused model name: {branch name: largest |branch - base|}} for every branch whose
    base is also among `models` under the branch's name; `x` numpy data (a dataset: {}).

    Example:

    ```python
    import keras, numpy as np, kfuse
    from kfuse.evaluation.self_check import branch_drift

    base = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    fused = kfuse.stack([kfuse.Branch(base, name="b")], head=2)
    gaps = branch_drift({"b": base, "fused": fused}, np.ones((3, 4), "float32"))
    assert gaps["fused"]["b"] < 1e-5
    ```
    """
    if x is None or is_dataset(x):
        return {}
    found = {}
    for name, model in models.items():
        fused = fused_model(model)
        if fused is None:
            continue
        bases = {
            n: m for n, m in models.items()
            if n != name and isinstance(m, keras.Model) and fused_model(m) is None
        }
        gaps = branch_base_differences(fused, bases, x, batch_size=batch_size) if bases else {}
        if gaps:
            found[name] = gaps
    return found


def drift_notes(drift):
    """One note per branch whose outputs differ from its base's beyond float noise."""
    return [
        f"self-check: branch '{branch}' of '{model}' differs from the base '{branch}' by up to "
        f"{gap:.3g} on the same rows (float noise is < {TOLERANCE:g}): the branch copy lost "
        "state (e.g. adapted preprocessing); rebuild the fused model from the base"
        for model, gaps in drift.items()
        for branch, gap in gaps.items()
        if not gap <= TOLERANCE
    ]
