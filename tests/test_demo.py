"""The main job end to end in quick mode: bases saved, stack fused, table, export, report."""

import os
import subprocess
import sys

import numpy as np
import pytest

from kfuse.cli import main


@pytest.mark.slow
def test_demo_quick_writes_models_export_and_report(tmp_path, capsys):
    out = tmp_path / "saved_models"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for stage in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert stage in printed
    assert "| kfuse stack" in printed and "(paper) human" in printed
    for name in ("cnn", "gru", "mlp"):
        assert (out / f"mnist1d_{name}.keras").is_file()
    export = out / "mnist1d_stack" / "1"
    assert (export / "saved_model.pb").is_file()
    assert (out / "mnist1d_stack_report.html").stat().st_size > 10_000
    # the export serves in a process that imports only TensorFlow
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"fn = tf.saved_model.load({str(export)!r}).signatures['serving_default']\n"
        "out = fn(signal=tf.zeros((2, 40)))\n"
        "assert 'kfuse' not in sys.modules\n"
        "assert {'logits', 'probabilities'} <= set(out), sorted(out)\n"
        "print(out['probabilities'].numpy().sum(-1).round(4).tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[1.0, 1.0]" in result.stdout


def test_demo_table_lists_paper_figures():
    from kfuse.demo import format_table

    table = format_table([{"model": "CNN", "test accuracy": 0.9}, {"model": "kfuse stack", "test accuracy": 0.95}])
    assert "90.0%" in table and "95.0%" in table and "94%" in table and "96%" in table


def test_meta_learner_never_sees_the_bases_training_rows():
    from kfuse.datasets.mnist1d import holdout_split

    y = np.arange(100) % 10
    fit_idx, hold_idx = holdout_split(100, 0.2, seed=0, stratify=y)
    assert len(hold_idx) == 20 and not set(fit_idx) & set(hold_idx)
    assert sorted(np.bincount(y[hold_idx])) == [2] * 10
