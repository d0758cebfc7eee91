"""The one progress bar of kfuse's long jobs: a `keras.utils.Progbar`, silent with verbose=0.

The Stacker (folds x branches), every ensemble (members), `merge_to_file` and `kfuse merge`
(merged tensors) and kfuse's tuners (trials) advance one of these; `verbose=0` prints
nothing, `verbose=1` a bar that updates in place (one line per update where the output is
not a terminal), `verbose=2` one line at the end.

Example:

```python
from kfuse.utils.progress import progress_bar
bar = progress_bar(3, verbose=0, unit_name="member")
for _ in range(3):
    bar.add(1)  # silent: verbose=0
```
"""

import keras


def progress_bar(total, verbose, unit_name="step", stateful_metrics=None):
    """A `keras.utils.Progbar` over `total` steps (None: an unknown total), shown when `verbose`."""
    total = None if total is None else max(int(total), 1)
    return keras.utils.Progbar(
        total, verbose=int(verbose or 0), unit_name=unit_name, stateful_metrics=stateful_metrics
    )
