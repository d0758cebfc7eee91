"""Model soups (Wortsman et al. 2022): the uniform soup and the greedy soup."""

import dataclasses

import keras
import numpy as np

from .api import merge
from .batchnorm import repair_batchnorm
from .checks import check_same, weight_specs
from .sources import load_keras_file


def uniform_soup(models, repair_data=None, batch_size=256):
    """The mean of all the models' weights (``merge(models, "linear")``).

    Example:

    ```python
    import keras
    from kfuse.merge import uniform_soup
    def net():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    soup = uniform_soup([net(), net(), net()])
    print(soup.count_params())
    ```
    """
    return merge(models, "linear", repair_data=repair_data, batch_size=batch_size)


def accuracy(y_true, y_pred):
    """Accuracy of class scores (argmax; one column: threshold 0.5 for probabilities, else 0).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.soups import accuracy
    print(accuracy(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]])))  # 1.0
    ```
    """
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true).reshape(len(y_pred), -1)
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        labels = y_true.argmax(1) if y_true.shape[1] > 1 else y_true[:, 0]
        return float(np.mean(y_pred.argmax(1) == labels))
    y_pred = y_pred.reshape(len(y_pred))
    cut = 0.5 if y_pred.min() >= 0 and y_pred.max() <= 1 else 0.0
    return float(np.mean((y_pred > cut) == (y_true[:, 0] > 0.5)))


METRICS = {"accuracy": accuracy}


@dataclasses.dataclass
class GreedySoup:
    """The result of ``greedy_soup``: ``model``, the ``ingredients`` (input indices, in the
    order they were added), every input's held-out ``scores``, and the soup's ``score``."""

    model: keras.Model
    ingredients: list
    scores: dict
    score: float
    history: list


def _metric(metric):
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"metric must be a callable(y_true, y_pred) or one of {list(METRICS)}, "
                         f"got {metric!r}")
    return METRICS[metric]


def _set_float(model, specs, arrays):
    for spec, var, value in zip(specs, model.weights, arrays, strict=False):
        if spec.kind == "float":
            var.assign(value)


def greedy_soup(models, validation_data=None, metric="accuracy", repair_data=None,
                batch_size=256, verbose=0):
    """Greedy soup: sort by held-out score, add a model (running mean) only if it helps.

    Each candidate is ``(n * soup + new) / (n + 1)`` over the float weights; it is kept only
    if the held-out score strictly rises. BatchNorm statistics come from the best model, or
    are recomputed on ``repair_data`` for each candidate of two or more models (a soup of one
    is the best model itself, statistics included).

    Example:

    ```python
    import keras, numpy as np
    from kfuse.merge import greedy_soup
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    candidates = [keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]) for _ in range(3)]
    result = greedy_soup(candidates, validation_data=(x, y))  # the best first, then what helps
    print(result.ingredients, result.score >= max(result.scores.values()))  # [...] True
    ```
    """
    if validation_data is None:
        raise ValueError(
            "greedy_soup needs validation_data=(x_val, y_val): held-out rows (not the "
            "training rows) decide which models join the soup"
        )
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError("validation_data must be a tuple (x_val, y_val)")
    if isinstance(models, (keras.Model, str)) or len(models) < 1:
        raise ValueError("greedy_soup needs a list of at least one model")
    score_fn = _metric(metric)
    x_val, y_val = validation_data
    models = [m if isinstance(m, keras.Model) else load_keras_file(str(m), f"models[{i}]")
              for i, m in enumerate(models)]
    specs = weight_specs(models[0])
    for i, m in enumerate(models[1:], 1):
        check_same(specs, weight_specs(m), f"models[{i}]")

    def evaluate(model):
        return float(score_fn(y_val, model.predict(x_val, batch_size=batch_size, verbose=0)))

    scores = {i: evaluate(m) for i, m in enumerate(models)}
    order = sorted(scores, key=lambda i: -scores[i])
    soup = keras.models.clone_model(models[order[0]])
    soup.set_weights(models[order[0]].get_weights())
    arrays = [np.asarray(w) for w in models[order[0]].get_weights()]
    best, ingredients = scores[order[0]], [order[0]]
    history = [(order[0], best, True)]
    for i in order[1:]:
        n = len(ingredients)
        new = models[i].get_weights()
        candidate = [
            (n * a + b) / (n + 1) if s.kind == "float" else a
            for a, b, s in zip(arrays, new, specs, strict=False)
        ]
        _set_float(soup, specs, candidate)
        if repair_data is not None:
            repair_batchnorm(soup, repair_data, batch_size)
        score = evaluate(soup)
        kept = score > best
        history.append((i, score, kept))
        if verbose:
            print(f"greedy_soup: model {i} -> {score:.4f} ({'kept' if kept else 'dropped'})")
        if kept:
            arrays, best = candidate, score
            ingredients.append(i)
    soup.set_weights(models[order[0]].get_weights())  # BatchNorm statistics of the best
    _set_float(soup, specs, arrays)
    if repair_data is not None and len(ingredients) > 1:
        repair_batchnorm(soup, repair_data, batch_size)
    return GreedySoup(soup, ingredients, scores, best, history)
