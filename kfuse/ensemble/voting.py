"""Voting: members trained on every row, their votes combined in ONE graph."""

import numpy as np

from kfuse.ensemble.assemble import vote_graph, weighted_graph
from kfuse.ensemble.bagging import BaggingClassifier
from kfuse.ensemble.conventions import closest

VOTING = ("soft", "hard")


class VotingClassifier(BaggingClassifier):
    """Voting of Keras networks, named as scikit-learn's `VotingClassifier`, as one graph.

    Each member is a fresh network (its own seed) trained on every row; the graph
    combines them: `voting="soft"` averages their class probabilities with `weights`
    (`WeightedAverage` with fixed weights; torchensemble's `VotingClassifier`), `"hard"`
    takes the weighted majority of their predicted classes (`WeightedVote`, whose output
    is each class's share of the vote). Where scikit-learn's takes a list of fitted
    estimators, this one takes a member spec and `n_estimators`, as kfuse's bagging does.

    Args:
        estimator (Callable | keras.Model | list): a builder callable, a `keras.Model` to clone, or
            a list of either (member i uses entry i modulo the list length).
        n_estimators (int): number of members.
        voting (str): "soft" (average of probabilities) or "hard" (majority of classes).
        weights (list[float] | None): one weight per member (None: equal).
        epochs (int): epochs each member trains.
        batch_size (int): rows per training step.
        fit_params (dict | list[dict] | None): other keywords of Keras `Model.fit`, as for
            `BaggingClassifier`.
        random_state (int | None): int seed of the members' initialisation.
        verbose (int): 1 shows a progress bar over members; 0 is silent.
        work_dir (str | os.PathLike | None): folder where finished members are kept; `fit` again
            resumes.
        parallel (bool): train every member at once in one Keras model, as for
            `BaggingClassifier`.

    Each member trains with the optimizer its builder compiled (Adam and the task's loss
    when it compiled none). Fitted attributes: `model_` (the graph), `estimators_`,
    `classes_`, `n_classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import VotingClassifier

    x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    vote = VotingClassifier(build, n_estimators=2, epochs=1, random_state=0).fit(x, y)
    vote.predict(x).shape  # (60,)
    ```
    """

    task = "classification"

    def __init__(self, estimator, n_estimators=10, voting="soft", weights=None, epochs=1, batch_size=32,
                 fit_params=None, random_state=None, verbose=0, work_dir=None, parallel=False):
        # bagging's sampling arguments stay at every row, no draw (`_samples` gives each member every row)
        super().__init__(estimator, n_estimators, max_samples=1.0, bootstrap=False, epochs=epochs,
                         batch_size=batch_size, fit_params=fit_params, random_state=random_state,
                         verbose=verbose, work_dir=work_dir, parallel=parallel)
        self.voting = voting
        self.weights = weights

    def _samples(self, n, n_estimators):
        """Every member trains on every row; `weights` and `voting` checked first."""
        self._check_voting()
        self._member_weights(n_estimators)
        return [np.arange(n)] * n_estimators

    def _check_voting(self):
        if self.voting in VOTING:
            return
        raise ValueError(f"{self._who()}: `voting`={self.voting!r} is not one of {list(VOTING)}"
                         + closest(self.voting, VOTING))

    def _member_weights(self, count):
        who = self._who()
        if self.weights is None:
            return [1.0] * count
        weights = np.asarray(self.weights, dtype="float64").ravel()
        if len(weights) != count:
            raise ValueError(f"{who}: `weights` has {len(weights)} entries but n_estimators={count}; give one "
                             "weight per member or None (equal)")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"{who}: `weights` must be finite, >= 0 and not all zero; received {self.weights!r}")
        return weights.tolist()

    def _finish(self, x, target, n, samples):
        weights = self._member_weights(len(self.estimators_))
        if self.task == "classification" and self.voting == "hard":
            self.model_ = vote_graph(self.estimators_, weights, name="voting")
        else:
            self.model_ = weighted_graph(self.estimators_, weights, self.task, name="voting")


class VotingRegressor(VotingClassifier):
    """Voting for regression, named as scikit-learn's `VotingRegressor`: the members'
    outputs averaged with `weights`, in one graph. Same arguments as `VotingClassifier`
    but `voting`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import VotingRegressor

    x = np.random.default_rng(0).normal(size=(60, 3)).astype("float32"); y = x.sum(1)
    build = lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    vote = VotingRegressor(build, n_estimators=2, epochs=1, random_state=0).fit(x, y)
    vote.predict(x).shape  # (60, 1)
    ```
    """

    task = "regression"

    def __init__(self, estimator, n_estimators=10, weights=None, epochs=1, batch_size=32, fit_params=None,
                 random_state=None, verbose=0, work_dir=None, parallel=False):
        # voting "soft": the average; regression has no majority
        super().__init__(estimator, n_estimators, "soft", weights, epochs=epochs, batch_size=batch_size,
                         fit_params=fit_params, random_state=random_state, verbose=verbose,
                         work_dir=work_dir, parallel=parallel)
