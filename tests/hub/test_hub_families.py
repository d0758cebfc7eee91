"""Every KerasHub backbone family, built from a tiny config, is a branch computing exactly
what the backbone computes (its selected output pooled in the branch), in memory and after
a `.keras` round trip of the fused model."""

import keras
import numpy as np
import pytest

import kfuse
from tests.hub.families import backbone_families

# family -> Branch arguments (what to hand over) and the numpy reduction of the base output
CHOICES = {
    "bert": dict(select="sequence_output", pool="masked_mean"),
    "distil_bert": dict(pool="masked_mean"),
    "roberta": dict(pool="first"),
    "deberta_v3": dict(pool="masked_mean"),
    "albert": dict(select="pooled_output"),
    "electra": dict(select="sequence_output", pool="first"),
    "gpt2": dict(pool="last"),
    "gemma": dict(pool="last"),
    "llama": dict(pool="masked_mean"),
    "resnet": dict(pool="mean"),
    "vit": dict(pool="first"),
    "cspnet": dict(pool="mean"),
    "whisper": dict(select="decoder_sequence_output", pool="last"),
    "clip": dict(tap="vision_projection"),
}


def _feed(branch, base, x):
    if not isinstance(x, dict):
        return {branch.input_names[0]: x}
    return {key: x[t.name] for key, t in zip(branch.input_names, base.inputs, strict=True)}


def _expected(base, x, choice, mask):
    """The backbone's own output, selected and pooled with numpy."""
    if "tap" in choice:
        probe = keras.Model(base.inputs, base.get_layer(choice["tap"]).output)
        return np.asarray(probe.predict(x, verbose=0))
    out = base.predict(x, verbose=0)
    out = np.asarray(out[choice["select"]] if "select" in choice else out, "float64")
    pool = choice.get("pool")
    if pool == "mean":
        return out.mean(axis=tuple(range(1, out.ndim - 1)))
    if pool == "first":
        return out[:, 0]
    if pool == "masked_mean":
        return (out * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    if pool == "last":
        return out[np.arange(len(out)), mask.sum(1) - 1]  # right padding
    return out


@pytest.mark.parametrize("family", sorted(CHOICES))
def test_backbone_family_is_an_exact_branch(family, tmp_path):
    base, x = backbone_families()[family]()
    choice = CHOICES[family]
    branch = kfuse.Branch(base, name=family, trainable=False, **choice)
    model = kfuse.stack([branch], head=2)
    feed = _feed(branch, base, x)
    mask = (
        next((v for k, v in x.items() if k.endswith("padding_mask")), None)
        if isinstance(x, dict)
        else None
    )
    got = model.branch_outputs(feed)[family]
    assert got.ndim == 2
    np.testing.assert_allclose(got, _expected(base, x, choice, mask), atol=1e-5, rtol=0)
    path = tmp_path / "fused.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(again.branch_outputs(feed)[family], got, atol=1e-5, rtol=0)
    assert not any(w is v for w in model.weights for v in base.weights)  # a copy
