"""The description every merge method carries: its parameters, how many models it needs."""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MergeMethod:
    """One merge method over one tensor at a time (after mergekit's ``merge_methods``).

    ``fn(tensors, base, **params)`` receives the models' arrays for one weight (a list of
    numpy arrays), the base model's array (or ``None``), the per-model parameters as lists
    (one value per model) and the global parameters as scalars; it returns one array.
    ``needs_base``: a base is required; ``takes_base``: a base is optional (task vectors
    when given); neither: ``fn(tensors, **params)``. A global parameter whose default is
    ``None`` must be given.

    Example:

    ```python
    from kfuse.merge.methods import get_method
    method = get_method("linear")
    print(method.model_parameters, method.needs_base)
    ```
    """

    name: str
    fn: Callable
    model_parameters: dict = field(default_factory=dict)
    global_parameters: dict = field(default_factory=dict)
    needs_base: bool = False
    takes_base: bool = False
    min_models: int = 1
    max_models: int = None
    random: bool = False

    @property
    def parameter_names(self):
        return sorted(set(self.model_parameters) | set(self.global_parameters))
