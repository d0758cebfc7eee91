"""Issue 34, merging: nothing destroyed, nothing half-written, no silent NaN.

`merge_to_file` / `kfuse merge` never write over an input, keep an existing output without
``overwrite`` / ``--force``, leave no temp file after an error, Ctrl-C, SIGTERM, and clean a
killed merge's temp files on the next run; linear weights summing to zero subtract models;
a NaN / inf in an input is refused by name; config errors carry their line and column.
"""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from kfuse.merge import merge, merge_to_file
from kfuse.merge.atomic import PREFIX, clean_stale
from kfuse.merge.config import main as merge_main
from kfuse.merge.methods.linear import linear


def _net(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])


@pytest.fixture
def files(tmp_path):
    for i, name in enumerate(("base", "a", "b")):
        _net(i).save(tmp_path / f"{name}.keras")
    return tmp_path


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _temps(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith(PREFIX))


# --- the output never destroys a file -------------------------------------------------------

def test_output_equal_to_an_input_is_refused_and_the_input_kept(files):
    a, b = str(files / "a.keras"), str(files / "b.keras")
    before = _digest(a)
    with pytest.raises(ValueError, match=r"is models\[1\].*never writes over one of its inputs"):
        merge_to_file([b, a], "linear", a, overwrite=True)
    assert _digest(a) == before and _temps(files) == []


def test_output_naming_an_input_by_another_path_is_refused(files):
    a = str(files / "a.keras")
    os.symlink(a, files / "link.keras")
    before = _digest(a)
    with pytest.raises(ValueError, match=r"is models\[0\]"):
        merge_to_file([str(files / "link.keras"), str(files / "b.keras")], "linear",
                      str(files / "sub" / ".." / "a.keras"), overwrite=True)
    with pytest.raises(ValueError, match=r"is base"):
        merge_to_file([str(files / "b.keras")], "task_arithmetic",
                      str(files / "link.keras"), base=a, overwrite=True)
    assert _digest(a) == before


def test_existing_output_kept_without_overwrite_and_replaced_with_it(files):
    a, b, out = str(files / "a.keras"), str(files / "b.keras"), files / "out.keras"
    out.write_bytes(b"the user's own file")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        merge_to_file([a, b], "linear", str(out))
    assert out.read_bytes() == b"the user's own file"
    merge_to_file([a, b], "linear", str(out), overwrite=True)
    got = keras.saving.load_model(str(out)).get_weights()
    for g, u, v in zip(got, _net(1).get_weights(), _net(2).get_weights(), strict=True):
        np.testing.assert_allclose(g, (u + v) / 2, rtol=1e-6)


def _yaml(folder, text):
    path = folder / "merge.yaml"
    path.write_text(text)
    return str(path)


def test_cli_refuses_an_input_as_output_even_with_force(files, capsys):
    before = _digest(files / "a.keras")
    cfg = _yaml(files, "merge_method: linear\nmodels: [a.keras, b.keras]\noutput: a.keras\n")
    assert merge_main([cfg, "--force"]) == 2
    err = capsys.readouterr().err
    assert "is models[0]" in err and "never writes over" in err
    assert _digest(files / "a.keras") == before


def test_cli_existing_output_needs_force(files, capsys):
    from kfuse.cli import main as kfuse_main

    (files / "soup.keras").write_bytes(b"keep me")
    cfg = _yaml(files, "merge_method: linear\nmodels: [a.keras, b.keras]\noutput: soup.keras\n")
    assert kfuse_main(["merge", cfg]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and "overwrite=True" not in err
    assert (files / "soup.keras").read_bytes() == b"keep me"
    assert kfuse_main(["merge", cfg, "--force"]) == 0
    assert keras.saving.load_model(str(files / "soup.keras")).count_params() == 26


def test_a_failed_merge_leaves_no_temp_file_and_no_output(files):
    bad = _net(5)
    bad.layers[1].kernel.assign(np.full((4, 2), np.nan, "float32"))
    bad.save(files / "bad.keras")
    with pytest.raises(ValueError, match="NaN"):
        merge_to_file([str(files / "a.keras"), str(files / "bad.keras")], "linear",
                      str(files / "out.keras"))
    assert _temps(files) == [] and not (files / "out.keras").exists()


# --- killed mid-write: real processes --------------------------------------------------------

# A merge method of the user's own (the public MergeMethod) that signals once the temp
# archive is being written (its second tensor) and then waits to be killed.
_SCRIPT = textwrap.dedent("""
    import sys, time
    from kfuse.merge import merge_to_file
    from kfuse.merge.methods.base import MergeMethod
    from kfuse.merge.methods.linear import linear
    calls = []
    def slow(tensors, base=None, **kw):
        calls.append(1)
        if len(calls) == 2:
            open(sys.argv[3], "w").close()
            time.sleep(300)
        return linear(tensors, **kw)
    method = MergeMethod("linear", slow, model_parameters={"weight": 1.0},
                         global_parameters={"normalize": True})
    merge_to_file(sys.argv[1].split(","), method, sys.argv[2])
""")


def _killed_mid_write(folder, sig):
    inputs = [str(folder / "a.keras"), str(folder / "b.keras")]
    ready = folder / "ready"
    env = dict(os.environ, KERAS_BACKEND="numpy", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, ",".join(inputs),
                             str(folder / "out.keras"), str(ready)], env=env,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the merge never reached its write"
            time.sleep(0.05)
        assert _temps(folder), "the temp archive is being written"
        proc.send_signal(sig)
        return proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_sigterm_mid_write_removes_the_temp_files(files):
    before = [_digest(files / n) for n in ("a.keras", "b.keras")]
    assert _killed_mid_write(files, signal.SIGTERM) == 128 + signal.SIGTERM
    assert _temps(files) == [] and not (files / "out.keras").exists()
    assert [_digest(files / n) for n in ("a.keras", "b.keras")] == before


@pytest.mark.slow
def test_sigkill_mid_write_leftovers_are_cleaned_by_the_next_merge(files):
    before = [_digest(files / n) for n in ("a.keras", "b.keras")]
    assert _killed_mid_write(files, signal.SIGKILL) == -signal.SIGKILL
    left = _temps(files)
    assert left and not (files / "out.keras").exists()  # what a kill cannot clean ...
    out = merge_to_file([str(files / "a.keras"), str(files / "b.keras")], "linear",
                        str(files / "out.keras"))
    assert _temps(files) == []  # ... the next run does
    assert [_digest(files / n) for n in ("a.keras", "b.keras")] == before
    assert keras.saving.load_model(out).count_params() == 26


def test_temp_files_of_a_live_merge_are_kept_and_unknown_ones_reported(tmp_path):
    live = tmp_path / f"{PREFIX}{os.getppid()}-abc.keras"  # our parent is alive
    dead = tmp_path / f"{PREFIX}999999999-abc.keras"
    legacy = tmp_path / f"{PREFIX}x1y2.keras"
    for path in (live, dead, legacy):
        path.write_bytes(b"partial")
    with pytest.warns(UserWarning, match=r"1 merge temp file.*\.kfuse-merge-x1y2\.keras"):
        removed = clean_stale(str(tmp_path))
    assert removed == [str(dead)]
    assert live.exists() and legacy.exists() and not dead.exists()


# --- merge arithmetic ------------------------------------------------------------------------

def test_linear_weights_summing_to_zero_subtract_models():
    a, b = _net(1), _net(2)
    merged = merge([a, b], "linear", model_parameters=[{"weight": 1.0}, {"weight": -1.0}])
    for m, u, v in zip(merged.get_weights(), a.get_weights(), b.get_weights(), strict=True):
        assert np.isfinite(m).all()
        np.testing.assert_allclose(m, u - v, rtol=1e-6, atol=1e-7)


def test_linear_zero_sum_function_and_nonzero_sum_still_normalised():
    x, y = np.array([1.0, 2.0]), np.array([4.0, -2.0])
    np.testing.assert_allclose(linear([x, y], weight=[2.0, -2.0]), 2 * x - 2 * y)
    np.testing.assert_allclose(linear([x, y], weight=[3.0, 1.0]), (3 * x + y) / 4)
    np.testing.assert_allclose(linear([x, y], weight=[1.0, -1.0], normalize=False), x - y)


def test_nan_in_an_input_model_is_refused_naming_model_and_weight():
    a, b = _net(1), _net(2)
    kernel = b.layers[0].kernel.numpy()
    kernel[2, 1] = np.nan
    b.layers[0].kernel.assign(kernel)
    with pytest.raises(ValueError, match=r"models\[1\] has 1 NaN/inf value\(s\) in weight "
                                         r"'sequential.*dense.*kernel' \(first at index \(2, 1\)\)"):
        merge([a, b], "linear")


def test_inf_in_the_base_file_is_refused_naming_its_path(files):
    base = _net(0)
    base.layers[1].bias.assign(np.array([0.0, np.inf], "float32"))
    base.save(files / "inf_base.keras")
    with pytest.raises(ValueError, match=r"base \('.*inf_base\.keras'\) has 1 NaN/inf"):
        merge_to_file([str(files / "a.keras")], "task_arithmetic", str(files / "o.keras"),
                      base=str(files / "inf_base.keras"))
    assert _temps(files) == []


# --- config errors keep their line and column ------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("merge_method: linear\nmodels:\n  - a.keras\n  - [b.keras\noutput: o.keras\n",
     r"merge\.yaml: YAML syntax error at line 5, column \d+ \(not valid YAML\)"),
    ("merge_method: linear\nmodels: [a.keras]\noutput: o.keras\nmodel_stuff: 1\n",
     r"merge\.yaml, line 4, column 1: unknown key 'model_stuff'"),
    ("merge_method: linear\nmodels:\n  - a.keras\n  - missing.keras\noutput: o.keras\n",
     r"merge\.yaml, line 4, column 5: model file .*missing\.keras' does not exist"),
    ("merge_method: ties\nbase_model: base.keras\nmodels:\n  - a.keras\n"
     "  - {model: b.keras, parameters: {density: 1.5}}\noutput: o.keras\n",
     r"merge\.yaml, line 5, column 5: model_parameters\[1\]: parameter 'density'"),
    ("merge_method: linear\nmodels: [a.keras]\noutput: o.keras\ndtype: int8\n",
     r"merge\.yaml, line 4, column 8: dtype must be"),
])
def test_merge_config_errors_name_line_and_column(files, capsys, text, message):
    import re

    assert merge_main([_yaml(files, text)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
