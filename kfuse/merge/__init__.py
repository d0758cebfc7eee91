"""Weight-space merging of Keras models: one network of the original size.

``merge`` (mergekit's tensor methods, checked against mergekit 0.1.5: linear, slerp, nuslerp,
multislerp, karcher, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs,
breadcrumbs_ties, della, della_linear, sce, model_stock, nearswap, arcee_fusion,
passthrough; data-aware: fisher, regmean, adamerging, zipit with ``data=``), model soups,
BatchNorm repair, activation REPAIR, permutation alignment (Git Re-Basin weight matching) and
interpolation curves. Stands on its own: Keras, numpy, scipy, h5py (gradients from the
backend's own autodiff).
"""

from .api import merge
from .batchnorm import repair_batchnorm
from .methods import METHODS, get_method
from .soups import GreedySoup, greedy_soup, uniform_soup
from .to_file import merge_to_file

__all__ = [
    "METHODS",
    "GreedySoup",
    "get_method",
    "greedy_soup",
    "merge",
    "merge_to_file",
    "repair_batchnorm",
    "uniform_soup",
]

from .align import align  # noqa: E402
from .curve import InterpolationCurve, interpolation_curve  # noqa: E402

__all__ += ["InterpolationCurve", "align", "interpolation_curve"]

from .data_aware import DATA_METHODS, repair_activations  # noqa: E402

__all__ += ["DATA_METHODS", "repair_activations"]
