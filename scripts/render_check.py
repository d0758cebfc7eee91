"""Open a kfuse HTML report in headless Chromium and check that it rendered.

Usage:
    python scripts/render_check.py [REPORT.html] [--out DIR]

Without REPORT.html it first writes a sample report (synthetic predictions plus a tiny
fused Keras model, so every section and figure appears). It then runs Debian's
`chromium` headless twice: `--dump-dom` (the DOM after load; the report's own script
sets `<body data-images-loaded="loaded/total">`) and `--screenshot` (a PNG). It checks
that every embedded image decoded, that the score tables are present, and that the
screenshot is not blank. Exit status 0 when all checks pass, 1 otherwise, 2 when no
browser is installed (`apt-get install -y chromium`).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_browser():
    """Path of a Chromium-family browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser, args, timeout):
    with tempfile.TemporaryDirectory(prefix="kfuse-chromium-") as profile:
        command = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def render(html_path, out_dir, width=1200, height=3000, timeout=120, browser=None):
    """(DOM text after load, screenshot path) for `html_path`, rendered headless."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found; install it with `apt-get install -y chromium`")
    url = "file://" + os.path.abspath(html_path)
    os.makedirs(out_dir, exist_ok=True)
    dom = _run(browser, ["--virtual-time-budget=5000", "--dump-dom", url], timeout).stdout
    png = os.path.join(out_dir, "report.png")
    if os.path.exists(png):
        os.remove(png)
    _run(browser, [f"--screenshot={png}", f"--window-size={width},{height}", url], timeout)
    return dom, png


def check(dom, png_path, min_images=1):
    """List of failed checks (empty when the page rendered)."""
    problems = []
    marker = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    if marker is None:
        problems.append("the page's load script did not run (no data-images-loaded on <body>)")
    else:
        loaded, total = int(marker.group(1)), int(marker.group(2))
        if total < min_images:
            problems.append(f"only {total} <img> tags; expected at least {min_images}")
        if loaded != total:
            problems.append(f"{total - loaded} of {total} images failed to decode")
    tables = dom.count('<table class="kfuse"')
    if tables < 1:
        problems.append("no report tables in the DOM")
    if "accuracy" not in dom and "mae" not in dom:
        problems.append("no score column (accuracy / mae) in the DOM")
    if not os.path.exists(png_path) or os.path.getsize(png_path) == 0:
        problems.append("no screenshot was written")
    else:
        import matplotlib.image

        pixels = matplotlib.image.imread(png_path)
        if pixels.std() < 0.01:
            problems.append("the screenshot is blank")
    return problems


def sample_report(path):
    """Write a report with every section: three prediction arrays plus a fused Keras model."""
    import keras
    import numpy as np

    import kfuse

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype("float32")
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)

    def base(seed):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=15, verbose=0)
        return model

    a, b = base(1), base(2)
    fused = kfuse.stack([kfuse.Branch(a, name="a", inputs="x", trainable=False),
                         kfuse.Branch(b, name="b", inputs="x", trainable=False)],
                        fusion="weighted_average", head=3)
    fused.fit(x, y, epochs=10, verbose=0)
    report = kfuse.compare({"a": a, "b": b, "noisy": rng.dirichlet(np.ones(3), size=400), "fused": fused}, x, y)
    return report.to_html(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", nargs="?", help="HTML report to check (default: write a sample)")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "kfuse-render-check"))
    args = parser.parse_args(argv)
    if find_browser() is None:
        print("render-check: no Chromium found; install it with `apt-get install -y chromium`")
        return 2
    path = args.report or sample_report(os.path.join(args.out, "report.html"))
    dom, png = render(path, args.out)
    problems = check(dom, png)
    images = re.search(r'data-images-loaded="(\d+/\d+)"', dom)
    tables = dom.count('<table class="kfuse"')
    print(f"render-check: {path}: images loaded {images.group(1) if images else '?'}, "
          f"tables {tables}, screenshot {png}")
    for problem in problems:
        print(f"  FAIL: {problem}")
    print("render-check: OK" if not problems else "render-check: FAILED")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
