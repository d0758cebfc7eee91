"""Trained-in copies kept between fits: the fixed cost paid once per architecture.

A fit's fixed cost is mostly its compiled worker (`kfuse.trainers.worker`): the copy of the
architecture and the trace of its epoch (`kfuse.trainers.epoch_function`), about a second
for a small CNN, most of a fit on small data. A worker fits any model of its architecture
(`same_architecture`) and `Worker.load` resets it completely, so a worker a finished fit
gives back trains the next fit's models exactly as a new one would. Here the process keeps
a few: `take` hands one out (to one fit at a time), `give_back` keeps it for the next fit.

Only small architectures are kept (`MAX_PARAMETERS`: a large one's trace is a small part
of its fit, and its copy holds memory), at most `MAX_KEPT` of them and `MAX_KEPT_PARAMETERS`
in all, the oldest dropped first. The bound is the parameters held, not a count alone: a
loop over five ensembles of a small CNN gives back about ten workers a round, and with a
count of 4 every fit found its worker dropped by the others (FGE's time on small data
went from 0.90x to the peer's to below when they stayed).
`clear()` drops them all. Thread-safe: a kept object is out of the shelf while a fit holds it.

Example:

```python
import keras, numpy as np
from kfuse.ensemble import VotingClassifier
from kfuse.trainers import kept

x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
net = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
VotingClassifier(net, n_estimators=2, epochs=1, batch_size=8).fit(x, y)
[kind for kind, _ in kept.shelf()]  # one worker kept ('side_by_side' or 'shared_fit')
VotingClassifier(net, n_estimators=2, epochs=1, batch_size=8).fit(x, y)  # trains in it: no trace
kept.clear()
```
"""

import threading

#: the most objects kept; the oldest goes first
MAX_KEPT = 16
#: the largest architecture kept, in parameters
MAX_PARAMETERS = 2_000_000
#: the most parameters kept in all (about 100 MB with an optimizer's two slots per weight)
MAX_KEPT_PARAMETERS = 8_000_000

_SHELF = []  # [(kind, object, parameters)], oldest first
_LOCK = threading.Lock()


def take(kind, fits):
    """A kept object of `kind` for which `fits(object)` holds, off the shelf; else None."""
    with _LOCK:
        for i, (k, kept_object, _) in enumerate(_SHELF):
            if k == kind and fits(kept_object):
                del _SHELF[i]
                return kept_object
    return None


def give_back(kind, kept_object, model):
    """Keep `kept_object` (of `kind`, trained in for `model`'s architecture) for a later
    fit, when `model` is small enough (`MAX_PARAMETERS`)."""
    parameters = model.count_params()
    if parameters > MAX_PARAMETERS:
        return
    with _LOCK:
        _SHELF.append((kind, kept_object, parameters))
        while len(_SHELF) > MAX_KEPT or sum(p for _, _, p in _SHELF) > MAX_KEPT_PARAMETERS:
            del _SHELF[0]


def clear():
    """Drop every kept object (their models and traces are freed with them)."""
    with _LOCK:
        _SHELF.clear()


def shelf():
    """The kept objects, oldest first, as `(kind, object)` pairs (a copy of the list)."""
    with _LOCK:
        return [(kind, kept_object) for kind, kept_object, _ in _SHELF]
