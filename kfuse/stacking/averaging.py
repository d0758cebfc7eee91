"""`refit=False`: the K fold models of a base averaged inside one functional model."""

import keras

from kfuse.stacking.base_training import feature_model


def fold_average_model(branch, fold_models, method, input_shapes):
    """A functional model named after the branch whose output is the mean of the fold
    models' meta-features (probabilities, logits or raw outputs) on the same inputs."""
    if method == "features":
        raise ValueError(
            f"Branch '{branch.name}': refit=False averages the fold models, but tapped "
            "features of different fold models do not share one space. Use refit=True, or "
            "stack_method='predict_proba' / 'logits'."
        )
    inputs = [
        keras.Input(shape=input_shapes[k], name=k, dtype=branch.input_dtypes.get(k))
        for k in branch.input_names
    ]
    outputs = []
    for k, model in enumerate(fold_models):
        member = feature_model(branch, model, method, input_shapes, name=f"{branch.name}_fold{k}")
        outputs.append(member(inputs[0] if len(inputs) == 1 else inputs))
    if len(outputs) == 1:
        out = outputs[0]
    else:
        out = keras.layers.Average(name=f"{branch.name}_fold_average")(outputs)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, out, name=branch.name)
