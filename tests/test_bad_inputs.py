"""The bad-input catalogue of issue 12: every case gives a clear error (its type, and the
words that name the branch / input / file / key and say what to do) or a correct result.

One process, tiny models; the real-process cases (concurrent exports, kills) live in
tests/export/test_export_processes.py and the CLI's own cases in tests/cli/test_cli_errors.py.
"""

import os

import keras
import numpy as np
import pytest

import kfuse
from kfuse.stacking.checkpoint import DamagedCheckpointError
from kfuse.utils.names import check_name, suggest
from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow()


def mlp(name="m", width=4, classes=3, input_name="signal"):
    x = keras.Input((width,), name=input_name)
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(x)
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax", name="probabilities")(hidden), name=name)


def blobs(n=40, width=4, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = (np.eye(classes, width)[y] * 3 + rng.normal(size=(n, width))).astype("float32")
    return x, y.astype("int64")


# -- names TensorFlow cannot use as scope or signature names ------------------------------------
BAD_NAMES = [("my branch", "my_branch"), ("a:b", "a_b"), ("é", "e"), ("_a", "a"), ("my signal", "my_signal"),
             ("naïve net", "naive_net")]


@pytest.mark.parametrize("name, fix", BAD_NAMES)
def test_bad_branch_names_are_refused_with_a_valid_suggestion(name, fix):
    with pytest.raises(ValueError, match="not a name TensorFlow accepts") as info:
        kfuse.Branch(lambda t: keras.layers.Dense(2)(t), name=name, inputs={"signal": (4,)})
    assert repr(name) in str(info.value) and f"try {fix!r}" in str(info.value)


@pytest.mark.parametrize("name, fix", BAD_NAMES)
def test_bad_input_names_are_refused_at_branch(name, fix):
    with pytest.raises(ValueError, match=f"Input name {name!r} is not a name TensorFlow accepts") as info:
        kfuse.Branch(lambda t: keras.layers.Dense(2)(t), name="ok", inputs={name: (4,)})
    assert f"try {fix!r}" in str(info.value)


def test_bad_input_name_from_input_shapes_is_refused_at_stack():
    branch = kfuse.Branch(mlp(), name="m", inputs="signal")
    branch.input_names = ["my signal"]  # as an older Branch object could carry
    with pytest.raises(ValueError, match="'my signal' is not a name TensorFlow accepts.*try 'my_signal'"):
        kfuse.stack([branch], head=3, input_shapes={"my signal": (4,)})


@pytest.mark.parametrize("name", ["cnn", "my_branch", "a.b", "b-2", "3d"])
def test_valid_names_pass(name):
    assert check_name(name) == name and suggest(name) == name


def test_branch_name_must_be_a_string():
    with pytest.raises(TypeError, match="must be a str"):
        check_name(3)


# -- head= ints ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "head, words",
    [(0, ["head=0", ">= 2"]), (-2, ["head=-2", ">= 2"]), (np.int64(0), ["head=0"]),
     (1, ["head=1 is ambiguous", "kfuse.layers.heads.Binary()", "kfuse.layers.heads.Regression(1)"]),
     (np.int32(1), ["head=1 is ambiguous"])],
)
def test_int_heads_below_two_raise(head, words):
    with pytest.raises(ValueError) as info:
        kfuse.layers.heads.get_head(head)
    for word in words:
        assert word in str(info.value)


def test_head_one_at_stack_suggests_binary_or_regression():
    with pytest.raises(ValueError, match=r"Binary\(\).*Regression\(1\)"):
        kfuse.stack([kfuse.Branch(mlp(), name="m", inputs="signal")], head=1)


# -- fusion layer names are stable within a stack, whatever ran before ------------------------------
def test_fusion_layer_names_do_not_grow_across_stacks():
    names = []
    for _ in range(3):
        model = kfuse.stack([kfuse.Branch(mlp("a"), name="a", inputs="signal"),
                             kfuse.Branch(mlp("b"), name="b", inputs="signal")], fusion="concat", head=3)
        names.append([layer.name for layer in model.top.layers if "concat" in layer.name])
    assert names == [["concat"]] * 3


# -- export: versions, REST dtypes ------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("exports") / "m"
    tokens = keras.Input((3,), dtype="int32", name="tokens")
    signal = keras.Input((2,), name="signal")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(tokens))
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([embedded, signal]))
    model = keras.Model({"tokens": tokens, "signal": signal}, out, name="mixed")
    path = kfuse.export.export_saved_model(model, str(base))
    return model, str(base), path


GOOD = {"tokens": np.zeros((2, 3), "int32"), "signal": np.zeros((2, 2), "float32")}
BAD_PAYLOADS = [
    ({**GOOD, "signal": np.array([["a", "b"], ["c", "d"]])}, "'signal' holds <U1 values", "float32 numbers"),
    ({**GOOD, "tokens": np.full((2, 3), 1.5)}, "'tokens' holds float64 values", "truncate"),
    ({**GOOD, "tokens": np.array([["x", "y", "z"]] * 2)}, "'tokens' holds <U1", "integer id"),
    ({**GOOD, "signal": np.zeros((2, 2), "complex64")}, "'signal' holds complex64", "float32"),
]


@pytest.mark.parametrize("source", ["path", "model"])
@pytest.mark.parametrize("payload, first, second", BAD_PAYLOADS)
def test_rest_payload_checks_dtypes(exported, source, payload, first, second):
    model, base, path = exported
    signature = path if source == "path" else model
    with pytest.raises(TypeError, match=first) as info:
        kfuse.export.rest_payload(payload, signature=signature)
    assert second in str(info.value)


def test_rest_payload_accepts_matching_dtypes_and_a_dict_signature(exported):
    _, _, path = exported
    body = kfuse.export.rest_payload(GOOD, format="inputs", signature=path)
    assert body["inputs"]["tokens"] == [[0, 0, 0]] * 2
    with pytest.raises(TypeError, match="'x' holds <U1 values"):
        kfuse.export.rest_payload({"x": np.array([["a"]])}, signature={"x": {"shape": [None, 1], "dtype": "float32"}})
    with pytest.raises(TypeError, match="expects strings"):
        kfuse.export.rest_payload({"t": np.zeros((1, 1))}, signature={"t": {"shape": [None, 1], "dtype": "string"}})


def test_incomplete_version_is_reported_and_skipped(exported, tmp_path):
    _, base, path = exported
    copy = tmp_path / "m"
    import shutil

    shutil.copytree(base, copy)
    (copy / "2").mkdir()  # an interrupted copy: TF Serving would try to load it
    with pytest.warns(UserWarning, match="2 is an incomplete version: it has no saved_model.pb"):
        described = kfuse.export.inspect(str(copy))
    assert "serving_default" in described["1"] and "TF Serving would try" in described["2"]["incomplete"]
    with pytest.warns(UserWarning, match="incomplete version.*skipping it"):
        assert kfuse.export.latest(str(copy)) == str(copy / "1")
    with pytest.warns(UserWarning, match="skipping"):
        assert kfuse.export.rest_payload(GOOD, signature=str(copy))["instances"]
    with pytest.raises(ValueError, match="is an incomplete version.*overwrite=True"):
        kfuse.export.rest_payload(GOOD, signature=str(copy / "2"))
    with pytest.raises(ValueError, match="incomplete version"):
        kfuse.export.latest(str(copy / "2"))
    only = tmp_path / "only"
    (only / "1").mkdir(parents=True)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="holds no complete version"):
        kfuse.export.latest(str(only))
    # the next export does not reuse an incomplete version's number
    assert kfuse.export.export_saved_model(exported[0], str(copy)).endswith(os.sep + "3")


@pytest.mark.parametrize(
    "kwargs, error, words",
    [({"version": 0}, ValueError, "positive int; received 0"),
     ({"version": "2"}, ValueError, "positive int; received '2'"),
     ({"version": True}, ValueError, "positive int; received True"),
     ({"version": 1}, FileExistsError, "exists; pass overwrite=True")],
)
def test_bad_export_arguments(exported, kwargs, error, words):
    model, base, _ = exported
    with pytest.raises(error, match=words):
        kfuse.export.export_saved_model(model, base, **kwargs)


def test_export_into_a_file_and_inspect_a_missing_path(exported, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; TF Serving needs a directory"):
        kfuse.export.export_saved_model(exported[0], str(tmp_path / "file"))
    with pytest.raises(ValueError, match="does not exist"):
        kfuse.export.inspect(str(tmp_path / "nothing"))


# -- Stacker: work_dir, checkpoints, features ------------------------------------------------------
def fresh_stacker(work_dir, units=4, verbose=0, **kwargs):
    branch = kfuse.Branch(lambda t: keras.layers.Dense(units, name="d")(t), name="f", inputs="signal",
                          fit={"epochs": 1, "batch_size": 16})
    return kfuse.Stacker([branch], head=2, cv=2, work_dir=work_dir, verbose=verbose,
                         meta_fit={"epochs": 1}, **kwargs)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import contextlib
    import io

    work_dir = tmp_path_factory.mktemp("run") / "wd"
    x, y = blobs()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        fresh_stacker(str(work_dir), verbose=1).fit(x, y)
    return work_dir, x, y, printed.getvalue()


def test_work_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    x, y = blobs()
    with pytest.raises(ValueError, match="work_dir .* is a file, not a folder"):
        fresh_stacker(str(tmp_path / "f")).fit(x, y)


def test_callable_branch_change_is_seen_by_the_fingerprint(finished_run):
    work_dir, x, y, _ = finished_run
    with pytest.raises(ValueError, match=r"different configuration \(differs in: branches\).*delete"):
        fresh_stacker(str(work_dir), units=16).fit(x, y)


@pytest.mark.parametrize("file", ["run.json", "fold_0/f.npz", "fold_1/f.keras", "refit/f.keras"])
def test_damaged_checkpoint_files_are_named(finished_run, tmp_path, file):
    import shutil

    work_dir, x, y, _ = finished_run
    copy = tmp_path / "wd"
    shutil.copytree(work_dir, copy)
    data = (copy / file).read_bytes()
    (copy / file).write_bytes(data[: len(data) // 3])  # cut short, as by a crash or a full disk
    with pytest.raises(DamagedCheckpointError, match="is damaged and cannot be read") as info:
        fresh_stacker(str(copy)).fit(x, y)
    message = str(info.value)
    assert str(copy / file) in message and "Delete it and fit again" in message and "start over" in message
    if file == "fold_0/f.npz":  # the fix the message gives works (one case: it retrains)
        os.remove(copy / file)
        assert fresh_stacker(str(copy)).fit(x, y).model_ is not None


@pytest.mark.parametrize("refit", [True, False])
def test_features_of_trained_branches_are_refused(refit):
    branch = kfuse.Branch(mlp(), name="m", inputs="signal", tap="hidden")
    with pytest.raises(ValueError, match="stack_method='features' on a branch trained per fold.*trainable=False"):
        kfuse.Stacker([branch], head=3, cv=2, refit=refit, stack_method="features")


def test_progress_bar_names_the_refit_step(finished_run):
    printed = finished_run[3]
    assert "refit: 1" in printed and "fold: 0.0000e+00" not in printed


# -- FusionHyperModel -------------------------------------------------------------------------------
def test_hypermodel_warns_about_dropped_fusions_and_records_the_repaired_draw():
    import keras_tuner

    wide = kfuse.Branch(mlp("w", classes=5), name="w", inputs="signal", output="probabilities")
    narrow = kfuse.Branch(mlp("n"), name="n", inputs="signal", output="probabilities")
    with pytest.warns(UserWarning, match=r"fusion\(s\) \['weighted_average'\] do not accept"):
        hypermodel = kfuse.tuning.FusionHyperModel([wide, narrow], head=3, fusions=["concat", "weighted_average"])
    hp = keras_tuner.HyperParameters()
    hp.values.update({"include_w": False, "include_n": False})
    with pytest.warns(UserWarning, match="drew no branch; it runs branch 'w' alone"):
        hypermodel.build(hp)
    assert hp.values["include_w"] is True  # what ran, not the empty draw


# -- compare() and the report -----------------------------------------------------------------------
def test_compare_names_the_model_when_scikit_learn_refuses():
    y = np.array([0.5, 1.5, 2.5, 0.1])
    proba = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"scoring model 'clf' failed.*\(1!=3\).*class ids for a classifier"):
        kfuse.compare({"clf": proba}, y=y)  # float labels: a regression task, scored on 3 columns


def test_binary_auc_column_is_roc_auc():
    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0.2, 0.9, 0.6, 0.4, 0.7, 0.1])
    report = kfuse.compare({"p": p}, y=y)
    assert "roc_auc" in report.table and "roc_auc_ovr" not in report.table
    assert kfuse.compare({"p": p}, y=y, metrics=["roc_auc"]).table.columns.tolist() == ["roc_auc"]


def test_mape_with_zero_targets_is_skipped_with_a_note():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    report = kfuse.compare({"r": y + 0.5}, y=y, task="regression")
    assert np.isnan(report.table.loc["r", "mape"])
    assert any("MAPE not computed: 1 of 4 targets are 0" in n for n in report.notes)
    assert report.table.loc["r", "mae"] == pytest.approx(0.5)


def test_regression_headline_says_mae_rose():
    import pandas as pd

    from kfuse.evaluation.report import _change

    assert _change("mae", 0.19) == "mae rose by 0.1900"
    assert _change("mae", -0.05) == "mae fell by 0.0500"
    assert _change("accuracy", 0.02) == "accuracy dropped by 0.0200"

    class Contrib:
        metric, model_name, method = "mae", "fused", "zeroed output"
        ablation = pd.DataFrame({"mae drop": [0.19, -0.01]}, index=["a", "b"])

        def table(self):
            return self.ablation

    y = np.array([0.0, 1.0, 2.0])
    report = kfuse.compare({"r": y + 0.1}, y=y, task="regression")
    report.contributions = {"fused": Contrib()}
    line = report.headline()[-1]
    assert "mae rose by 0.1900" in line and "drop" not in line
    # the figure title fits: its box lies inside the figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from kfuse.evaluation import plots

    fig = plots.contribution_bars(Contrib())
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig._suptitle.get_window_extent(canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    assert "mae rise without the branch" in fig.axes[0].get_title()


# -- tune config values ------------------------------------------------------------------------------
def base_config(tmp_path):
    path = tmp_path / "b.keras"
    if not path.exists():
        mlp().save(path)
        np.savez(tmp_path / "d.npz", x=np.zeros((4, 4), "float32"), y=np.zeros(4, "int64"))
    return {"branches": [{"path": str(path), "name": "b"}], "data": {"source": str(tmp_path / "d.npz")}}


@pytest.mark.parametrize(
    "section, key, value, words",
    [("fit", "epochs", "one", "fit.epochs must be a whole number >= 1; received 'one' (str)"),
     ("fit", "epochs", 0, "fit.epochs must be a whole number >= 1; received 0"),
     ("fit", "batch_size", 2.5, "fit.batch_size must be a whole number"),
     ("fit", "validation_split", 2, "fit.validation_split must be a number in [0, 1)"),
     ("fit", "shuffle", "yes", "fit.shuffle must be true or false"),
     ("tuner", "max_trials", "many", "tuner.max_trials must be a whole number >= 1; received 'many'"),
     ("tuner", "seed", -1, "tuner.seed must be a whole number >= 0"),
     ("data", "rows", "all", "data.rows must be a whole number >= 1; received 'all'"),
     ("export", "version", 0, "export.version must be a whole number >= 1"),
     ("export", "name", 7, "export.name must be a string")],
)
def test_tune_config_value_types(tmp_path, section, key, value, words):
    from kfuse.tuning.config import check_config

    config = base_config(tmp_path)
    config.setdefault(section, {})[key] = value
    with pytest.raises(ValueError) as info:
        check_config(config, where="tune.yaml")
    assert words in str(info.value)


@pytest.mark.parametrize(
    "extra, words",
    [({"head": "three"}, "head must be the number of classes, a whole number >= 2"),
     ({"head": 1}, "received 1"),
     ({"space": {"fusions": ["concatt"]}}, "unknown fusion 'concatt' (did you mean 'concat'?)"),
     ({"space": {"fusions": "gatted"}}, "unknown fusion 'gatted'"),
     ({"space": {"learning_rate": {"min": "low", "max": 1}}}, "space.learning_rate: Range: `min_value` must be a number")],
)
def test_tune_config_heads_and_fusions(tmp_path, extra, words):
    from kfuse.tuning.config import check_config

    with pytest.raises(ValueError) as info:
        check_config({**base_config(tmp_path), **extra}, where="tune.yaml")
    assert words in str(info.value)


def test_tune_config_yaml_syntax_error(tmp_path):
    from kfuse.tuning.config import load_config

    path = tmp_path / "bad.yaml"
    path.write_text("branches: [a\n  data: mnist1d\n")
    with pytest.raises(ValueError, match=r"bad.yaml: YAML syntax error at line 2, column \d+"):
        load_config(str(path))


# -- shapes and labels the head cannot take, caught before any training ---------------------------
def test_a_sequence_reaching_the_head_is_refused_at_stack():
    x = keras.Input((10, 4), name="s")
    h = keras.layers.Conv1D(8, 3, padding="same", name="conv")(x)
    base = keras.Model(x, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h)))
    with pytest.raises(ValueError, match=r"shape \(None, 10, 8\).*pool or flatten it first.*GlobalAveragePooling1D"):
        kfuse.stack([kfuse.Branch(base, name="b", inputs="s", tap="conv")], fusion=None, head=3)
    pooled = kfuse.stack([kfuse.Branch(base, name="b", inputs="s", tap="conv")], fusion=None,
                         meta=keras.layers.GlobalAveragePooling1D(), head=3)
    assert pooled.output_shape == (None, 3)


@requires_tensorflow()
def test_labels_inside_a_dataset_are_checked_on_the_first_batch():
    import tensorflow as tf

    model = kfuse.stack([kfuse.Branch(mlp(), name="m", inputs="signal")], head=3)
    data = tf.data.Dataset.from_tensor_slices((np.zeros((8, 4), "float32"), np.full(8, 7))).batch(4)
    with pytest.raises(ValueError, match=r"first batch of the tf.data.Dataset.*3 classes.*from 7 to 7.*head=8"):
        model.fit(data, verbose=0)


@pytest.mark.parametrize("labels", [np.array(list("abab")), np.array(["x", "y", "x", "y"], dtype=object)])
def test_string_class_labels_name_the_encoder(labels):
    model = kfuse.stack([kfuse.Branch(mlp(classes=2), name="m", inputs="signal")], head=2)
    with pytest.raises(ValueError, match=r"takes numeric labels.*LabelEncoder"):
        model.fit(np.zeros((4, 4), "float32"), labels, epochs=1, verbose=0)
    stacker = kfuse.Stacker([kfuse.Branch(mlp(classes=2), name="m", inputs="signal")], head=2, cv=2, verbose=0)
    with pytest.raises(ValueError, match=r"Stacker: labels do not fit.*LabelEncoder"):
        stacker.fit(np.zeros((4, 4), "float32"), labels)
