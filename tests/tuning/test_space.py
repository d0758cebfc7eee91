"""The search space of FusionHyperModel: dimensions, restrictions, repairs, bad input.

No training here: each test builds models from hyperparameters and inspects them.
"""

import keras
import keras_tuner
import pytest

import kfuse
from kfuse.tuning import FusionHyperModel, Range, make_tuner


def fixed(**values):
    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def test_default_build_is_a_compiled_stack_over_the_whole_space(branches):
    hypermodel = FusionHyperModel(branches, head=10)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert isinstance(model, kfuse.FusedModel)
    assert model.optimizer is not None and model.loss is not None
    assert model.branch_names == ["a", "b"]
    expected = {"fusion", "meta_depth", "meta_width", "meta_dropout", "include_a", "include_b",
                "finetune_a", "finetune_b", "learning_rate", "modality_dropout"}
    assert expected <= set(hp.values)
    fusion = next(p for p in hp.space if p.name == "fusion")
    # sequence-only and 3-or-more-branch operators do not fit two (batch, 10) branches
    assert set(fusion.values) == set(kfuse.layers.fusion_names()) - {"cross_attention", "trimmed_mean"}
    assert model.predict(keras.ops.zeros((2, 40)), verbose=0).shape == (2, 10)


def test_fusions_are_restricted_to_the_branch_widths(bases):
    branches = [
        kfuse.Branch(bases[0], name="a", output="probabilities"),  # width 10
        kfuse.Branch(bases[1], name="b", tap="hidden"),  # width 16
    ]
    hypermodel = FusionHyperModel(branches, head=10)
    assert hypermodel.output_shapes == {"a": (10,), "b": (16,)}
    for name in ("average", "weighted_average", "soft_vote", "median"):
        assert name not in hypermodel.fusions
    for name in ("concat", "gated", "low_rank"):
        assert name in hypermodel.fusions


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fusions": ["average", "soft_vote"]}, "search space is empty.*average"),
        ({"fusions": []}, "search space is empty"),
        ({"include": []}, "search space is empty"),
        ({"meta_depth": []}, "search space is empty.*meta_depth"),
        ({"fusions": ["concatt"]}, "unknown fusion.*concatt"),
        ({"include": ["zzz"]}, "unknown branch.*zzz"),
        ({"required": ["a"], "include": ["b"]}, r"\['a'\] are required"),
        ({"meta_dropout": [0.1, 1.5]}, "meta_dropout"),
        ({"finetune": {"nope": 1}}, "unknown branch.*nope"),
    ],
)
def test_bad_spaces_are_refused_with_a_clear_error(bases, kwargs, match):
    branches = [
        kfuse.Branch(bases[0], name="a", output="probabilities"),
        kfuse.Branch(bases[1], name="b", tap="hidden"),
    ]
    with pytest.raises(ValueError, match=match):
        FusionHyperModel(branches, head=10, **kwargs)


def test_fixed_dimensions_give_exactly_that_model(branches):
    hypermodel = FusionHyperModel(
        branches, head=10, fusions="weighted_average", meta_depth=1, meta_width=(8,),
        meta_dropout=0.0, include=["a", "b"], finetune=0, learning_rate=1e-3, modality_dropout=0.0,
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert all(type(p).__name__ == "Fixed" for p in hp.space)
    assert isinstance(model.fusion_layer, kfuse.layers.WeightedAverage)
    assert model.get_layer("meta_dense_0").units == 8
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert not model.get_layer("a").trainable_weights and not model.get_layer("b").trainable_weights


def test_narrowed_range_dimension(branches):
    hypermodel = FusionHyperModel(branches, head=10, learning_rate=Range(1e-3, 2e-3, sampling="log"))
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    lr = next(p for p in hp.space if p.name == "learning_rate")
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-3, 2e-3, "log")


def test_empty_subset_is_repaired_to_the_first_branch(branches):
    hypermodel = FusionHyperModel(branches, head=10)
    model = hypermodel.build(fixed(include_a=False, include_b=False, modality_dropout=0.2))
    assert model.branch_names == ["a"]
    assert model.fusion_layer is None  # one branch: no fusion, no modality dropout


def test_a_fusion_the_drawn_subset_rejects_falls_back_to_the_first_that_fits(branches, bases):
    third = kfuse.Branch(bases[0], name="c", output="probabilities")
    hypermodel = FusionHyperModel([*branches, third], head=10, fusions=["trimmed_mean", "average"])
    assert hypermodel.fusions == ["trimmed_mean", "average"]  # both fit all three branches
    model = hypermodel.build(fixed(fusion="trimmed_mean", include_a=True, include_b=True, include_c=True))
    assert isinstance(model.fusion_layer, kfuse.layers.TrimmedMean)
    model = hypermodel.build(fixed(fusion="trimmed_mean", include_a=True, include_b=False, include_c=True))
    assert model.branch_names == ["a", "c"] and isinstance(model.fusion_layer, kfuse.layers.Average)


def test_required_branch_is_always_included(branches):
    hypermodel = FusionHyperModel(branches, head=10, required=["b"])
    hp = fixed(include_a=False)
    model = hypermodel.build(hp)
    assert model.branch_names == ["b"] and "include_b" not in hp.values


def test_finetune_unfreezes_only_the_top_layers(branches):
    hypermodel = FusionHyperModel(branches, head=10, fusions="concat")
    model = hypermodel.build(fixed(finetune_a=1, finetune_b=0))
    a = model.get_layer("a")
    assert [w.path for w in a.trainable_weights] == ["a/probabilities/kernel", "a/probabilities/bias"]
    assert not a.get_layer("hidden").trainable
    assert not model.get_layer("b").trainable_weights
    model = hypermodel.build(fixed(finetune_a=9, finetune_b=0))
    assert len(model.get_layer("a").trainable_weights) == 4


def test_modality_dropout_wraps_the_drawn_fusion(branches):
    hypermodel = FusionHyperModel(branches, head=10, fusions=["concat", "average"])
    model = hypermodel.build(fixed(fusion="average", modality_dropout=0.3, include_a=True, include_b=True))
    layer = model.fusion_layer
    assert isinstance(layer, kfuse.layers.ModalityDropout)
    assert layer.rate == pytest.approx(0.3) and isinstance(layer.fusion, kfuse.layers.Average)


def test_objective_must_be_a_compiled_metric(branches, tmp_path):
    hypermodel = FusionHyperModel(branches, head=10)
    hypermodel.check_objective("val_accuracy")
    with pytest.raises(ValueError, match="'val_auc' is not among the compiled metrics.*val_accuracy"):
        hypermodel.check_objective("val_auc")
    with pytest.raises(ValueError, match="no validation data"):
        hypermodel.check_objective("val_loss", validation=False)
    with pytest.raises(ValueError, match="val_auc"):
        make_tuner(hypermodel, "random", objective="val_auc", directory=str(tmp_path))
    extended = FusionHyperModel(branches, head=10, metrics=[keras.metrics.SparseTopKCategoricalAccuracy(3, name="top3")])
    extended.check_objective(keras_tuner.Objective("val_top3", "max"))


class RegularisedHead(FusionHyperModel):
    """A subclass adding one dimension: the head's L2 penalty."""

    def stack_kwargs(self, hp, design):
        kwargs = super().stack_kwargs(hp, design)
        l2 = hp.Choice("head_l2", [0.0, 1e-3])
        kwargs["head"] = kfuse.layers.heads.Classification(10, kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)
        return kwargs


def test_a_subclass_extends_the_space(branches):
    hypermodel = RegularisedHead(branches, head=10, fusions="concat")
    hp = fixed(head_l2=1e-3)
    model = hypermodel.build(hp)
    assert "head_l2" in hp.values and "fusion" in hp.values
    assert model.get_layer("logits").kernel_regularizer is not None
