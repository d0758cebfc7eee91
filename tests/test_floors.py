"""The import floors of ARCHITECTURE.md, checked on the code: a module imports only from its
own package or from lower floors (imports inside functions count too)."""

import ast
import pathlib

import kfuse

ROOT = pathlib.Path(kfuse.__file__).parent

# Longest prefix wins. A package's modules share its floor unless named on their own.
FLOORS = {
    "kfuse.version": 0,
    "kfuse.utils": 0,
    "kfuse.inputs": 1,
    "kfuse.layers": 1,
    "kfuse.datasets": 1,
    "kfuse.features": 1,
    "kfuse.merge": 1,
    "kfuse.branches": 2,
    "kfuse.distribute.strategy": 2,
    "kfuse.distribute.mwms_compat": 2,
    "kfuse.trainers": 3,
    "kfuse.engines": 3,  # independent fits on processes, Ray, Dask (issue 36)
    "kfuse.models": 4,
    "kfuse.ensemble": 5,
    "kfuse.stacking": 5,
    "kfuse.evaluation": 5,
    "kfuse.export": 5,
    "kfuse.tuning": 6,
    "kfuse.distribute": 6,
    "kfuse.cli": 7,
    "kfuse.demo": 7,
    "kfuse": 7,  # the package itself: the public names
}


def floor_of(module):
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return best, FLOORS[best]


def module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree, module, is_package):
    """Every kfuse module a file imports, at any depth (relative imports resolved)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                is_module = (ROOT.parent / full.replace(".", "/")).with_suffix(".py").exists() or (
                    ROOT.parent / full.replace(".", "/")
                ).is_dir()
                yield node.lineno, full if is_module else target


def test_no_module_imports_from_a_higher_floor():
    climbs = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        own, level = floor_of(module)
        tree = ast.parse(path.read_text())
        for line, target in imported(tree, module, path.name == "__init__.py"):
            if target != "kfuse" and not target.startswith("kfuse."):
                continue
            other, other_level = floor_of(target)
            if other_level > level and other != own:
                climbs.append(
                    f"{module}:{line} (floor {level}) imports {target} (floor {other_level})"
                )
    assert not climbs, "imports from a higher floor:\n" + "\n".join(climbs)


def test_at_most_eight_modules_loose_at_the_top():
    loose = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(loose) <= 8, loose
