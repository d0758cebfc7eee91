"""The `Stacker`'s fused graph: its branches under its fusion, meta-learner and head.

`stack_final` builds the graph, seeded, with the Stacker's record in
`model.kfuse_info["stacker"]`; `Graph` is what `Stacker._build` hands on (the branches in
order, what the top trains on, and on which rows).

Example:

```python
import keras, kfuse
from kfuse.stacking.final_graph import stack_final
from kfuse.stacking.settings import TopSettings, check_meta_fit

base = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3)])
settings = TopSettings(kfuse.layers.heads.Classification(3), check_meta_fit(None), seed=0, cv=5)
branch = kfuse.Branch(base, name="b", trainable=False, output="logits")
model = stack_final(settings, [branch], {"x": (4,)}, "concat", None, {"levels": 1})
model.kfuse_info["stacker"]  # {'levels': 1}
```
"""

from dataclasses import dataclass

import keras

from kfuse.layers import FusionLayer
from kfuse.models.graph import stack


@dataclass
class Graph:
    """What `Stacker._build` hands on: `ordered` (the final graph's branches, in order),
    `names` and `features` (what the top trains on: branch name -> meta-features, or the
    level-2 outputs), `members` (each branch's meta-features, for fixed weights) and `rows`
    (the rows the top trains on and the selection scores)."""

    ordered: list
    names: list
    features: dict
    members: dict
    rows: object


def fusion_copy(fusion):
    """A fresh copy of a fusion layer object (each fit builds its own); a name or None as it is."""
    if isinstance(fusion, FusionLayer):
        return type(fusion).from_config(fusion.get_config())
    return fusion


def stack_final(settings, branches, shapes, fusion, meta, record, passthrough=None):
    """The fused graph of `branches` under `fusion` (copied: `fusion_copy`), `meta` and
    the head of `settings` (the fit's `TopSettings`), seeded from its seed; `record` goes
    to `model.kfuse_info["stacker"]`. `passthrough`: None takes the settings' own."""
    keras.utils.set_random_seed(settings.seed + 5)  # the head's initial weights
    model = stack(
        branches,
        fusion=fusion_copy(fusion),
        meta=meta,
        head=settings.head,
        passthrough=settings.passthrough if passthrough is None else passthrough,
        name=settings.name,
        input_shapes=shapes,
        strategy=settings.strategy,
    )
    model.kfuse_info["stacker"] = record
    return model
