"""Ensembles of fused models over a KerasHub Task take the Task's raw strings: `fit`,
`predict`, `predict_proba` and `score` tokenize them once (`BaseEnsemble._tokenized`,
through `kfuse.branches.raw_inputs.tokenized`) before the members train side by side."""

import numpy as np
import pytest

import kfuse
from kfuse.ensemble import BaggingClassifier, WeightedEnsemble
from tests.hub.families import STRINGS, bert_classifier

keras_hub = pytest.importorskip("keras_hub")
TEXTS = STRINGS * 2
Y = np.array(["neg", "pos", "neg", "pos", "neg", "pos"])


def _fused():
    return kfuse.stack([kfuse.Branch(bert_classifier(), name="bert")], head=2)


def _tokens(member, texts):
    """The token inputs of `member`'s BERT branch, from the Task's own preprocessor."""
    reads = member.kfuse_info["branches"][0][
        "inputs"
    ]  # the fused model's names, in the Task's order
    sub = member.get_layer("bert")
    task = next(
        layer for layer in [sub, *sub.layers] if getattr(layer, "preprocessor", None) is not None
    )
    tokens = task.preprocessor(texts)
    return {name: np.asarray(tokens[t.name]) for name, t in zip(reads, sub.inputs, strict=True)}


@pytest.mark.slow
def test_bagging_of_fused_hub_models_fits_and_predicts_on_a_list_of_strings():
    bag = BaggingClassifier(
        _fused, n_estimators=2, fit_params={"epochs": 1, "batch_size": 3}, random_state=0
    )
    bag.fit(TEXTS, Y)  # failed before: "Missing data for input 'padding_mask'"
    tokens = _tokens(bag.estimators_[0], TEXTS)
    want = bag.predict_proba(tokens)
    np.testing.assert_allclose(bag.predict_proba(TEXTS), want, atol=1e-6)
    np.testing.assert_allclose(bag.predict_proba({"bert_text": np.array(TEXTS)}), want, atol=1e-6)
    # the graph averages the members' softmax probabilities (their heads hand out logits)
    members = [m.predict_proba(tokens, verbose=0) for m in bag.estimators_]
    np.testing.assert_allclose(want, np.mean(members, axis=0), atol=1e-6)
    assert list(bag.predict(TEXTS)) == list(bag.classes_[np.argmax(want, axis=1)])
    assert bag.score(TEXTS, Y) == pytest.approx(np.mean(bag.predict(tokens) == Y))
    weighted = WeightedEnsemble(bag.estimators_, method="uniform").fit()
    np.testing.assert_allclose(weighted.predict_proba(TEXTS), want, atol=1e-6)
