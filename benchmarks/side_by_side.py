"""Benchmarks of this tree and of another checkout, side by side in one run.

`python benchmarks/side_by_side.py OTHER_TREE NAME [NAME ...]` runs, for each NAME, the
script `benchmarks/NAME.py` of OTHER_TREE (a checkout of an earlier commit, e.g. made with
`git worktree add /tmp/before 849e536`), then this tree's, one after the other in this one
process's lifetime, and prints each script's table under a heading naming the tree and
commit. Each script imports its own tree's kfuse (it puts its parent folder first on
sys.path) and times its peer in the same run, so the two kfuse / peer ratios are measured
side by side on the same machine, minutes apart. The environment passes through
(KFUSE_BENCH_ROUNDS, KFUSE_SEEDS, ...: each script's docstring lists its knobs).
"""

import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parents[1]


def commit(tree):
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip() or "?"


def run(tree, name):
    """Run `tree`'s benchmarks/NAME.py; print its table (stdout) under a heading."""
    script = pathlib.Path(tree) / "benchmarks" / f"{name}.py"
    if not script.exists():
        sys.exit(f"side_by_side: {script} does not exist; give a checkout that has benchmarks/{name}.py")
    print(f"\n## {name}: {tree} ({commit(tree)})", flush=True)
    # the tree first on the path: a script of an older checkout may not put it there itself,
    # and an installed (editable) kfuse would otherwise answer for every tree
    path = os.pathsep.join(p for p in (str(tree), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, str(script)], cwd=tree, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=path), check=False)
    print(done.stdout, flush=True)
    if done.returncode:
        print(f"(exit {done.returncode}) {done.stderr[-2000:]}", flush=True)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    other, names = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2:]
    for name in names:
        run(other, name)
        run(HERE, name)


if __name__ == "__main__":
    main()
