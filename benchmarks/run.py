"""Run every benchmark script (benchmarks/bench_*.py) in turn; each prints one table.

Usage: python benchmarks/run.py [NAME_SUBSTRING ...]
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    scripts = sorted(f for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
    if argv:
        scripts = [s for s in scripts if any(a in s for a in argv)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    failed = []
    for script in scripts:
        print(f"\n=== {script} ===", flush=True)
        start = time.time()
        code = subprocess.call([sys.executable, os.path.join(HERE, script)], env=env)
        print(f"({script}: {time.time() - start:.0f}s, exit {code})", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"\nfailed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
