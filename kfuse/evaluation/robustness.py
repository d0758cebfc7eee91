"""Robustness sweeps: accuracy against noise per modality and for missing modalities.

Follows MultiBench (Liang et al. 2021): relative robustness is the area under the
score-vs-noise curve; effective robustness measures the score kept beyond what a late
fusion baseline keeps, sum_p [f(p) - (LF(p) + f(0) - LF(0))].
"""

import itertools

import numpy as np


def _default_metric(y, scores):
    scores = np.asarray(scores)
    y = np.asarray(y)
    if scores.ndim == 2 and scores.shape[1] > 1:
        return float(np.mean(np.argmax(scores, axis=1) == y.reshape(-1)))
    scores = scores.reshape(-1)
    threshold = 0.5 if scores.min() >= 0 and scores.max() <= 1 else 0.0
    return float(np.mean((scores > threshold).astype(int) == y.reshape(-1)))


def _branch_inputs(model, branch_inputs):
    if branch_inputs is not None:
        return [list(b) for b in branch_inputs]
    info = getattr(model, "kfuse_info", None) or {}
    return [list(b["inputs"]) for b in info.get("branches", [])]


class RobustnessResult:
    """What `robustness_sweep` measured.

    Attributes:
        clean: the score on the unperturbed data.
        noise: DataFrame (modality, level, score).
        missing: DataFrame (missing, present, score), one row per subset of missing
            modalities ("" for none missing).
        relative: dict modality -> relative robustness (area under the score-vs-noise
            curve over the swept levels, divided by the level range).
        effective: dict modality -> effective robustness against `baseline` (or None).
    """

    def __init__(self, clean, noise, missing, relative, effective, levels):
        self.clean = clean
        self.noise = noise
        self.missing = missing
        self.relative = relative
        self.effective = effective
        self.levels = list(levels)

    def summary(self):
        """One row per modality: clean score, relative and effective robustness."""
        import pandas as pd

        rows = [
            {
                "modality": m,
                "clean": self.clean,
                "relative_robustness": self.relative[m],
                "effective_robustness": None if self.effective is None else self.effective[m],
                "score_without_it": self._missing_score((m,)),
            }
            for m in self.relative
        ]
        return pd.DataFrame(rows)

    def _missing_score(self, modalities):
        key = "+".join(sorted(modalities))
        rows = self.missing[self.missing["missing"] == key]
        return float(rows["score"].iloc[0]) if len(rows) else None

    def plot(self, title=None):
        """Score vs noise per modality, and score per set of missing modalities."""
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        for modality, rows in self.noise.groupby("modality", sort=False):
            left.plot(rows["level"], rows["score"], marker="o", label=modality)
        left.set_xlabel("noise level (x modality std)")
        left.set_ylabel("score")
        left.set_title("noise on one modality")
        left.legend()
        labels = [m or "(none)" for m in self.missing["missing"]]
        right.barh(labels, self.missing["score"])
        right.set_xlabel("score")
        right.set_title("missing modalities")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig


def robustness_sweep(
    model,
    x,
    y,
    noise_levels=(0.0, 0.25, 0.5, 1.0, 2.0),
    modalities=None,
    missing=True,
    baseline=None,
    metric=None,
    fill=0.0,
    branch_inputs=None,
    seed=0,
    batch_size=256,
):
    """Score `model` under Gaussian noise on each modality and with modalities missing.

    Args:
        model (keras.Model): a Keras model (e.g. from `kfuse.stack`) taking a dict of named inputs.
        x (dict[str, ArrayLike]): dict of input name -> array. Each input is one modality unless
            `modalities` says otherwise.
        y (ArrayLike): labels.
        noise_levels (Sequence[float]): noise standard deviations, in units of each modality's std.
        modalities (list[str] | None): input names to perturb (default: every input of `x` but
            "presence").
        missing (bool): also score every non-empty proper subset of missing modalities.
        baseline (keras.Model | RobustnessResult | None): a late-fusion model (or a
            `RobustnessResult` of one) for effective robustness; swept with the same settings.
        metric (Callable | None): callable (y, predictions) -> float; default accuracy (arg-max, or
            a 0.5 / 0 threshold for one output).
        fill (float): value a missing modality is replaced with.
        branch_inputs (dict | None): for models with a "presence" input, the inputs each presence
            column (branch) reads; default from `model.kfuse_info`. A branch is marked
            absent when any input it reads is missing.
        seed (int): seed of the noise.

    Returns:
        RobustnessResult: a `RobustnessResult`.

    Example:

    ```python
    import keras, numpy as np, kfuse
    from kfuse.evaluation.robustness import robustness_sweep

    rng = np.random.default_rng(0)
    xi, xa = rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 4)).astype("float32")
    y = (xi[:, 0] + xa[:, 0] > 0).astype(int)
    net = lambda t: keras.layers.Dense(2)(t)  # noqa: E731
    model = kfuse.stack([kfuse.Branch(net, name="img", inputs={"image": (6,)}),
                         kfuse.Branch(net, name="aud", inputs={"audio": (4,)})],
                        fusion="average", head=2)
    result = robustness_sweep(model, {"image": xi, "audio": xa}, y, noise_levels=(0, 0.5, 1))
    result.summary()
    ```
    """
    import pandas as pd

    if not isinstance(x, dict) or not x:
        raise TypeError("robustness_sweep: `x` must be a non-empty dict of input name -> array")
    levels = sorted(float(v) for v in noise_levels)
    if not levels or levels[0] < 0:
        raise ValueError(f"robustness_sweep: `noise_levels` must be >= 0; received {noise_levels}")
    modalities = list(modalities) if modalities is not None else [k for k in x if k != "presence"]
    unknown = [m for m in modalities if m not in x]
    if unknown:
        raise ValueError(f"robustness_sweep: modalities {unknown} are not in x (keys {sorted(x)})")
    metric = metric or _default_metric
    x = {k: np.asarray(v) for k, v in x.items()}
    columns = _branch_inputs(model, branch_inputs) if "presence" in _model_inputs(model) else None

    def score(data):
        if columns is not None:
            data = dict(data)
            present = np.ones((len(y), len(columns)), "float32") if "presence" not in data else data["presence"]
            data["presence"] = present
        return metric(y, model.predict(data, batch_size=batch_size, verbose=0))

    clean = score(x)
    rng = np.random.default_rng(seed)
    noise_rows = []
    for m in modalities:
        std = float(np.std(x[m])) or 1.0
        for level in levels:
            noisy = dict(x)
            if level > 0:
                noisy[m] = (x[m] + rng.normal(scale=level * std, size=x[m].shape)).astype(x[m].dtype)
            noise_rows.append({"modality": m, "level": level, "score": clean if level == 0 else score(noisy)})
    noise = pd.DataFrame(noise_rows)
    missing_rows = [{"missing": "", "present": "+".join(sorted(modalities)), "score": clean}]
    if missing:
        for size in range(1, len(modalities)):
            for gone in itertools.combinations(sorted(modalities), size):
                data = {k: (np.full_like(v, fill) if k in gone else v) for k, v in x.items()}
                if columns is not None:
                    mask = [0.0 if any(i in gone for i in ins) else 1.0 for ins in columns]
                    base = data.get("presence", np.ones((len(y), len(columns)), "float32"))
                    data["presence"] = (base * np.asarray(mask, "float32")).astype("float32")
                rest = "+".join(m for m in sorted(modalities) if m not in gone)
                missing_rows.append({"missing": "+".join(gone), "present": rest, "score": score(data)})
    missing_frame = pd.DataFrame(missing_rows)
    span = (levels[-1] - levels[0]) if len(levels) > 1 else 1.0
    relative = {}
    for m in modalities:
        rows = noise[noise["modality"] == m]
        relative[m] = _area(rows["level"].to_numpy(), rows["score"].to_numpy()) / span
    effective = None
    if baseline is not None:
        if not isinstance(baseline, RobustnessResult):
            baseline = robustness_sweep(
                baseline, x, y, noise_levels=levels, modalities=modalities, missing=False,
                metric=metric, fill=fill, seed=seed, batch_size=batch_size,
            )
        effective = {}
        for m in modalities:
            f = noise[noise["modality"] == m]["score"].to_numpy()
            lf = baseline.noise[baseline.noise["modality"] == m]["score"].to_numpy()
            effective[m] = float(np.sum(f - (lf + f[0] - lf[0])))
    return RobustnessResult(clean, noise, missing_frame, relative, effective, levels)


def _area(levels, scores):
    """Trapezoidal area under scores(levels); a single level gives its score."""
    if len(levels) < 2:
        return float(scores[0])
    return float(np.sum((scores[1:] + scores[:-1]) / 2.0 * np.diff(levels)))


def _model_inputs(model):
    names = getattr(model, "input_names", None)
    if names:
        return list(names)
    return [t.name.split(":")[0] for t in getattr(model, "inputs", [])]
