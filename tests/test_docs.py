"""The documentation site builds with `mkdocs build --strict` (no broken link, reference or
docstring warning) and, where Debian's `chromium` is installed, its home page and an API
page render in a real headless browser (DOM checked, screenshots saved)."""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _render_check():
    """scripts/render_check.py, the project's one way of driving headless Chromium."""
    spec = importlib.util.spec_from_file_location("render_check", os.path.join(ROOT, "scripts", "render_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.slow
def test_site_builds_with_every_page(site):
    home = _read(site / "index.html")
    assert "Fuse several Keras networks into one Keras model" in home
    assert (site / "assets" / "fused_graph.png").stat().st_size > 10_000
    for page in ("guide/stacking", "compare", "benchmarks/ensembles", "design/do-no-harm", "changelog"):
        assert (site / page / "index.html").exists(), page
    api = _read(site / "reference" / "ensemble" / "index.html")
    for name in ("BaggingClassifier", "GradientBoostingClassifier", "SnapshotEnsemble", "WeightedEnsemble"):
        assert f'id="kfuse.ensemble.{name}"' in api, name
    notebooks = sorted(name[:-6] for name in os.listdir(os.path.join(ROOT, "notebooks")) if name.endswith(".ipynb"))
    for name in notebooks:  # every tutorial rendered, with its outputs
        page = _read(site / "tutorials" / name / "index.html")
        assert page.count("jp-OutputArea-output") >= 2, name
    assert "## 0.2.0" not in _read(site / "changelog" / "index.html")  # the snippet was rendered


@pytest.mark.slow
def test_home_and_api_pages_render_in_chromium(site, tmp_path):
    check = _render_check()
    if check.find_browser() is None:
        pytest.skip("no Chromium (apt-get install -y chromium)")
    import matplotlib.image

    pages = {"home": (site / "index.html", ["Ten lines", "Results against the peers", "fused_graph.png"]),
             "api": (site / "reference" / "kfuse" / "index.html", ["kfuse.stack", "kfuse.Branch", "FusedModel"])}
    for label, (page, expected) in pages.items():
        dom, png = check.render(page, tmp_path / label, width=1200, height=1600)
        assert "<title>" in dom and "kfuse" in dom, label
        missing = [text for text in expected if text not in dom]
        assert missing == [], f"{label}: {missing} not in the rendered DOM"
        pixels = matplotlib.image.imread(png)
        assert pixels.std() > 0.01, f"{label}: blank screenshot {png}"
        print(f"{label} screenshot: {png}")


def test_the_api_reference_has_one_page_per_package():
    """Every package under kfuse/ (and each loose public module) has its reference page, in the
    nav, and every `::: name` on the reference pages imports (a stale path after a move fails here
    before the slow site build)."""
    import importlib
    import re

    import yaml

    packages = sorted(name for name in os.listdir(os.path.join(ROOT, "kfuse"))
                      if os.path.exists(os.path.join(ROOT, "kfuse", name, "__init__.py")))
    reference = os.path.join(ROOT, "docs", "reference")
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as handle:
        nav = yaml.load(handle, Loader=yaml.BaseLoader)["nav"]
    api = next(item["API reference"] for item in nav if "API reference" in item)
    pages = {page for entry in api for page in entry.values()}
    for name in packages + ["inputs"]:
        assert f"reference/{name}.md" in pages, f"kfuse.{name} has no page in the nav's API reference"
        text = _read(os.path.join(reference, f"{name}.md"))
        assert f"::: kfuse.{name}\n" in text, f"docs/reference/{name}.md does not document kfuse.{name}"
    for page in os.listdir(reference):
        for target in re.findall(r"^::: ([\w.]+)", _read(os.path.join(reference, page)), re.M):
            importlib.import_module(target)  # ModuleNotFoundError names the stale path
