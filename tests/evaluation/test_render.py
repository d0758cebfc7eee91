"""A real headless browser (Debian's chromium) opens the HTML report: images decode, tables show.

Skipped when no Chromium is installed; `python scripts/render_check.py` runs the same check.
"""

import numpy as np
import pytest

import kfuse
from scripts.render_check import check, find_browser, render

pytestmark = pytest.mark.skipif(find_browser() is None, reason="no Chromium (apt-get install -y chromium)")


def test_report_renders_in_headless_chromium(rng, tmp_path):
    y = rng.integers(0, 3, 150)
    eye = np.eye(3)
    models = {
        "a": 0.8 * eye[np.where(rng.random(150) < 0.8, y, (y + 1) % 3)] + 0.2 / 3,
        "b": 0.8 * eye[np.where(rng.random(150) < 0.7, y, (y + 2) % 3)] + 0.2 / 3,
        "c": rng.dirichlet(np.ones(3), 150),
    }
    path = kfuse.compare(models, y=y, n_boot=100).to_html(tmp_path / "report.html")
    dom, png = render(path, tmp_path / "shot", height=1800)
    assert check(dom, png, min_images=4) == []
    assert 'data-images-loaded="4/4"' in dom
    assert dom.count('<table class="kfuse"') == 3
