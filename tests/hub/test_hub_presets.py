"""`kfuse.Branch` over a KerasHub preset directory written by `save_to_preset`: loaded
offline with its weights and tokenizer vocabulary; incomplete directories and hub names
refused, naming the branch and what to do."""

import os
import shutil

import numpy as np
import pytest

import kfuse
from tests.hub.families import STRINGS, backbone_families, bert_classifier


@pytest.fixture(scope="module")
def task_preset(tmp_path_factory):
    task = bert_classifier()
    folder = tmp_path_factory.mktemp("presets") / "bert_task"
    task.save_to_preset(str(folder))
    return task, str(folder)


def test_task_preset_directory_is_an_exact_branch(task_preset):
    task, folder = task_preset
    branch = kfuse.Branch(folder, name="bert", trainable=False)
    assert branch.source == folder and type(branch.base) is type(task)
    # the tokenizer vocabulary came from the preset's assets: the same tokens
    tokens = {k: np.asarray(v) for k, v in branch.base.preprocessor(STRINGS).items()}
    want = {k: np.asarray(v) for k, v in task.preprocessor(STRINGS).items()}
    for key in want:
        np.testing.assert_array_equal(tokens[key], want[key])
    model = kfuse.stack([branch], head=2)
    got = model.branch_outputs({k: tokens[k] for k in branch.input_names})["bert"]
    np.testing.assert_allclose(got, np.asarray(task(want)), atol=1e-5, rtol=0)


def test_backbone_preset_directory(tmp_path):
    vit, x = backbone_families()["vit"]()
    vit.save_to_preset(str(tmp_path / "vit"))
    branch = kfuse.Branch(tmp_path / "vit", name="vit", inputs="img", pool="first")
    got = kfuse.stack([branch], head=2).branch_outputs({"img": x})["vit"]
    np.testing.assert_allclose(got, np.asarray(vit(x))[:, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "remove, lacks",
    [("model.weights.h5", "model.weights.h5 or model.weights.json"), ("assets", "assets/"),
     ("config.json", "config.json"), ("task.weights.h5", "task.weights.h5")],
)  # fmt: skip
def test_incomplete_preset_directory_is_refused(task_preset, tmp_path, remove, lacks):
    folder = tmp_path / "copy"
    shutil.copytree(task_preset[1], folder)
    target = folder / remove
    shutil.rmtree(target) if target.is_dir() else os.remove(target)
    with pytest.raises(ValueError, match=rf"Branch 'bert': the KerasHub preset directory .* is incomplete: it lacks .*{lacks}.*save_to_preset"):  # fmt: skip
        kfuse.Branch(str(folder), name="bert")


@pytest.mark.parametrize(
    "name", ["bert_tiny_en_uncased", "kaggle://keras/bert/keras/bert_tiny_en_uncased/2"]
)
def test_hub_preset_name_needing_a_download_is_refused(name):
    with pytest.raises(
        ValueError,
        match=r"Branch 'bert': .* needs a download, which kfuse never does.*save_to_preset",
    ):
        kfuse.Branch(name, name="bert")
