"""Every docstring example of every kfuse module runs.

An example is a fenced ```python block after a line `Example:` in the docstring of a
module, class, function, method or property. Each runs in a fresh namespace, in its own
temporary working directory. Modules whose optional dependency is missing are skipped.
"""

import importlib
import inspect
import pkgutil
import re
import textwrap

import pytest

import kfuse

BLOCK = re.compile(r"Example:[ \t]*\n(?:[ \t]*\n)*([ \t]*)```python[ \t]*\n(.*?)\n[ \t]*```", re.S)


def _modules():
    found, missing = [], []
    for info in pkgutil.walk_packages(kfuse.__path__, "kfuse."):
        if info.name.endswith(".__main__"):  # runs the command on import
            continue
        try:
            found.append(importlib.import_module(info.name))
        except ImportError as error:  # an optional dependency (e.g. another backend's)
            missing.append((info.name, str(error)))
    return [kfuse, *found], missing


def _docstrings(module):
    yield module.__name__, module.__doc__
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj.__doc__
        elif inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj.__doc__
            for attr, member in vars(obj).items():
                target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if inspect.isfunction(target) and target.__doc__:
                    yield f"{module.__name__}.{name}.{attr}", target.__doc__


def examples():
    modules, _ = _modules()
    seen, cases = set(), []
    for module in modules:
        for where, doc in _docstrings(module):
            if not doc:
                continue
            for i, match in enumerate(BLOCK.finditer(doc)):
                code = textwrap.dedent(match.group(2))
                key = (where, code)
                if key not in seen:
                    seen.add(key)
                    cases.append(pytest.param(code, id=f"{where}#{i}"))
    return cases


CASES = examples()


def test_examples_were_found():
    names = " ".join(p.id for p in CASES)
    assert len(CASES) >= 45
    for where in ("kfuse.models.graph.stack", "kfuse.export", "kfuse.evaluation.robustness.robustness_sweep",
                  "kfuse.tuning.tuners.make_tuner", "kfuse.stacking.stacker.Stacker"):  # fmt: skip
        assert where + "#" in names, where


def test_every_docstring_example_runs(tmp_path, monkeypatch):
    # one test for all (one clear_session at the end instead of one per example)
    failures = []
    for case in CASES:
        (code,) = case.values
        work = tmp_path / case.id.replace("/", "_")
        work.mkdir()
        monkeypatch.chdir(work)
        try:
            exec(compile(code, f"<example {case.id}>", "exec"), {"__name__": "__docstring_example__"})
        except Exception as error:  # noqa: BLE001 - every failure is reported below
            failures.append(f"{case.id}: {type(error).__name__}: {str(error)[:300]}")
    assert not failures, "\n".join(failures)
