"""Registry of merge methods (mergekit's names): one small method per file over one tensor."""

import difflib

from . import (
    arcee_fusion,
    breadcrumbs,
    dare,
    della,
    karcher,
    linear,
    model_stock,
    multislerp,
    nearswap,
    nuslerp,
    passthrough,
    sce,
    slerp,
    task_arithmetic,
    ties,
)
from .base import MergeMethod

METHODS = {
    m.name: m
    for m in (
        linear.METHOD,
        slerp.METHOD,
        task_arithmetic.METHOD,
        ties.METHOD,
        dare.DARE_LINEAR,
        dare.DARE_TIES,
        model_stock.METHOD,
        breadcrumbs.BREADCRUMBS,
        breadcrumbs.BREADCRUMBS_TIES,
        della.DELLA,
        della.DELLA_LINEAR,
        sce.METHOD,
        nuslerp.METHOD,
        multislerp.METHOD,
        karcher.METHOD,
        nearswap.METHOD,
        arcee_fusion.METHOD,
        passthrough.METHOD,
    )
}


def get_method(name):
    """The registered ``MergeMethod`` called ``name`` (a clear error suggests the closest).

    Example:

    ```python
    from kfuse.merge.methods import get_method
    print(get_method("ties").model_parameters)
    ```
    """
    if isinstance(name, MergeMethod):
        return name
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), METHODS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown merge method {name!r}; expected one of {sorted(METHODS)}.{hint}"
        )
    return METHODS[name]


__all__ = ["METHODS", "MergeMethod", "get_method"]
