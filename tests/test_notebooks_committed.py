"""Every tutorial notebook is committed executed, with its outputs, so that it reads on a
repository page and on the docs site (mkdocs-jupyter renders it with `execute: false`).
The suite executes the notebooks again through nbmake, which must not write them back."""

import importlib.util
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SPEC = importlib.util.spec_from_file_location("clean_notebook_outputs",
                                               os.path.join(ROOT, "scripts", "clean_notebook_outputs.py"))
clean_notebook_outputs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(clean_notebook_outputs)
NOTEBOOKS = sorted(f for f in os.listdir(os.path.join(ROOT, "notebooks")) if f.endswith(".ipynb"))


def _code_cells(name):
    with open(os.path.join(ROOT, "notebooks", name), encoding="utf-8") as handle:
        notebook = json.load(handle)
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code" and "".join(cell["source"]).strip()]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 12, NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_with_its_outputs(name):
    cells = _code_cells(name)
    unrun = [i for i, cell in enumerate(cells) if cell.get("execution_count") is None]
    assert unrun == [], f"{name}: code cells {unrun} were never executed; run `jupyter nbconvert --execute --to notebook --inplace notebooks/{name}` and commit it"
    counts = [cell["execution_count"] for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{name}: cells executed out of order {counts}"
    with_output = sum(1 for cell in cells if cell.get("outputs"))
    assert with_output >= len(cells) // 2, f"{name}: only {with_output} of {len(cells)} code cells have outputs"
    errors = [i for i, cell in enumerate(cells) for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert errors == [], f"{name}: cells {errors} end in an error"
    noise = [line for cell in cells for out in cell.get("outputs", []) if out.get("output_type") == "stream"
             for line in "".join(out["text"]).splitlines() if clean_notebook_outputs.is_tf_log(line)]
    assert noise == [], f"{name}: TensorFlow log lines in the outputs; run scripts/clean_notebook_outputs.py"


def test_tensorflow_log_lines_are_told_apart():
    is_tf_log = clean_notebook_outputs.is_tf_log
    assert is_tf_log("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert is_tf_log("I0000 00:00:1796661118.262691    7342 port.cc:153] oneDNN custom operations are on.")
    assert is_tf_log("INFO:tensorflow:Assets written to: /tmp/x/model/assets")
    assert not is_tf_log("UserWarning: BaggingClassifier: 123 rows were in every member's sample")
    assert not is_tf_log("cnn test accuracy 0.912")


def test_the_suite_runs_notebooks_without_writing_them_back():
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as handle:
        lines = [line for line in handle if "--nbmake" in line]
    assert lines, "make test no longer runs the notebooks"
    assert all("--overwrite" not in line for line in lines), lines
    assert all(re.search(r"KFUSE_QUICK=1", line) for line in lines), lines
