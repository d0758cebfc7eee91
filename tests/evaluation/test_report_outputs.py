"""Report outputs: figures, Markdown, and the self-contained HTML file."""

import base64
import re

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

import kfuse


@pytest.fixture
def classification_report(rng):
    y = rng.integers(0, 3, 120)
    eye = np.eye(3)
    a = 0.7 * eye[np.where(rng.random(120) < 0.8, y, (y + 1) % 3)] + 0.1
    b = 0.7 * eye[np.where(rng.random(120) < 0.7, y, (y + 2) % 3)] + 0.1
    x = rng.normal(size=(120, 5)).astype("float32")
    base = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    fused = kfuse.stack([kfuse.Branch(base, name="p", inputs="x"), kfuse.Branch(base, name="q", inputs="x")],
                        fusion="weighted_average", head=3)
    models = {"a": a, "b": b, "noise": rng.dirichlet(np.ones(3), 120), "fused": fused}
    return kfuse.compare(models, x, y, n_boot=200)


def test_figures_are_matplotlib_figures(classification_report):
    report = classification_report
    figures = report.figures()
    assert set(figures) == {"roc", "confusion", "reliability", "diversity", "contributions_fused"}
    for figure, caption in figures.values():
        assert isinstance(figure, Figure) and caption
    assert len(report.plot_confusion().axes) == 4  # one panel per model
    assert len(report.plot_roc().axes[0].lines) == 5  # four models + the chance line
    with pytest.raises(ValueError, match="need a regression task"):
        report.plot_predicted_vs_true()
    with pytest.raises(ValueError, match="No contributions for 'a'"):
        report.plot_contributions("a")


def test_table_markdown_and_headline(classification_report):
    report = classification_report
    assert list(report.table.index) == ["a", "b", "noise", "fused"]
    text = report.to_markdown()
    assert text.startswith("# kfuse comparison (classification)")
    for heading in ("## Scores", "## Diversity between members", "## Significance ('fused' vs each member)",
                    "## Branch contributions: fused"):
        assert heading in text
    row = next(line for line in text.splitlines() if line.startswith("| a |"))
    assert f"{report.table.loc['a', 'accuracy']:.4f}" in row
    assert "oracle accuracy" in text
    assert any("'fused' scores accuracy" in line for line in report.headline())
    assert "Report(task='classification'" in repr(report)


def test_html_is_one_self_contained_file(classification_report, tmp_path):
    path = classification_report.to_html(tmp_path / "sub" / "report.html")
    text = open(path, encoding="utf-8").read()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 5
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert text.count('<table class="kfuse"') == 4  # scores, diversity, significance, contributions
    assert "http://" not in text and "https://" not in text  # nothing loaded from elsewhere
    assert 'class="best"' in text


def test_regression_report_outputs(rng, tmp_path):
    y = rng.normal(size=80)
    report = kfuse.compare({"a": y + rng.normal(size=80) * 0.3, "b": y * 0.5}, y=y, n_boot=100)
    assert set(report.figures()) == {"predicted_vs_true", "residuals"}
    assert len(report.plot_residuals().axes) == 2
    text = open(report.to_html(tmp_path / "r.html"), encoding="utf-8").read()
    assert text.count("data:image/png;base64,") == 2
    assert "Diversity: not applicable" in report.to_markdown()  # one member besides the reference
    with pytest.raises(ValueError, match="need a classification task"):
        report.plot_roc()


def test_write_demo_report(rng, tmp_path):
    from kfuse.evaluation import write_demo_report

    y = rng.integers(0, 2, 50)
    report = write_demo_report({"a": np.eye(2)[y], "b": rng.dirichlet([1, 1], 50)}, None, y, tmp_path / "d.html")
    assert (tmp_path / "d.html").exists() and report.table.loc["a", "accuracy"] == 1.0
