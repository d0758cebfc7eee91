"""`kfuse tune config.yaml`: search fusion designs of saved bases, export the best model.

The YAML file names the branches (`.keras` files), the data (`mnist1d` or an `.npz`),
the search space, the tuner and its budget; see `kfuse.tuning.config` for every key and
`examples/tune_mnist1d.yaml` for an example. The best model is saved as
`<export.dir>/<export.name>.keras` and exported for TF Serving to
`<export.dir>/<export.name>/<version>/`.
"""

import json
import os


def add_arguments(parser):
    parser.add_argument("config", help="YAML file (see examples/tune_mnist1d.yaml)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar over the trials; print only the final summary")


def run(args):
    from kfuse.tuning.config import load_config

    config = load_config(args.config)
    summary = tune(config, verbose=0 if args.quiet else 1)
    print(json.dumps(summary, indent=2))
    return 0


def tune(config, verbose=1):
    """Run the search a checked config describes; return a summary dict."""
    import numpy as np

    import kfuse
    from kfuse.datasets.mnist1d import load_data_section as load_data
    from kfuse.export import export_saved_model
    from kfuse.tuning import FusionHyperModel, make_tuner

    x, y, validation = load_data(config["data"])
    branches = [
        kfuse.Branch(
            spec["path"],
            name=spec["name"],
            inputs=spec.get("inputs"),
            output=spec.get("output", "raw"),
            tap=spec.get("tap"),
        )
        for spec in config["branches"]
    ]
    head = config["head"] if config["head"] is not None else int(np.max(y)) + 1
    hypermodel = FusionHyperModel(branches, head=head, **config["space"])
    tuner_config = dict(config["tuner"])
    kind = tuner_config.pop("type")
    tuner = make_tuner(hypermodel, kind, verbose=verbose, **tuner_config)
    fit = dict(config["fit"])
    if validation is not None:
        fit.pop("validation_split", None)
        fit["validation_data"] = validation
    fit["verbose"] = fit.get("verbose", 0) if verbose else 0
    tuner.search(x, y, **fit)
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best = tuner.get_best_models(1)[0]
    export = config["export"]
    os.makedirs(export["dir"], exist_ok=True)
    keras_path = os.path.join(export["dir"], export["name"] + ".keras")
    best.save(keras_path)
    saved = export_saved_model(
        best,
        os.path.join(export["dir"], export["name"]),
        version=export.get("version"),
        overwrite=bool(export.get("overwrite", False)),
    )
    return {
        "best_trial": best_trial.trial_id,
        "objective": tuner_config["objective"],
        "best_score": best_trial.score,
        "hyperparameters": best_trial.hyperparameters.values,
        "trials": len(tuner.oracle.trials),
        "keras": keras_path,
        "saved_model": saved,
    }
