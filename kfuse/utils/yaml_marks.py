"""YAML config files read with the line and column of every key and value, so that a config
error points at the place in the file (``merge.yaml, line 4, column 5: ...``).

``load(path)`` returns plain data whose mappings are `MarkedDict` and lists `MarkedList`
(``dict`` / ``list`` subclasses remembering where each entry starts); ``at(container, key)``
is the place of an entry as text. A syntax error is a ``ValueError`` with its line and column.
"""

import os

import yaml


class MarkedDict(dict):
    """A mapping read from YAML; ``marks[key]`` is ``(line, column)`` of the key (1-based),
    ``value_marks[key]`` that of its value."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.marks, self.value_marks = {}, {}


class MarkedList(list):
    """A list read from YAML; ``marks[i]`` is ``(line, column)`` of item ``i`` (1-based)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.marks = []


def _place(node):
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader, node):
    loader.flatten_mapping(node)
    out = MarkedDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.marks[key], out.value_marks[key] = _place(key_node), _place(value_node)
    return out


def _sequence(loader, node):
    out = MarkedList(loader.construct_object(item, deep=True) for item in node.value)
    out.marks = [_place(item) for item in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load(path, example=None):
    """The YAML file ``path`` read with marks; a syntax error raises ``ValueError`` naming
    the file, line and column (and ``example``, a config to compare with, when given).

    Example:

    ```python
    import os, tempfile
    from kfuse.utils import yaml_marks
    path = os.path.join(tempfile.mkdtemp(), "c.yaml")
    open(path, "w").write("a: 1\\nb: [2, 3]\\n")
    data = yaml_marks.load(path)
    print(data["b"], yaml_marks.at(data, "b"))  # [2, 3] line 2, column 4
    ```
    """
    with open(path) as f:
        try:
            return yaml.load(f, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            context = getattr(error, "context", None)
            also = f" ({context})" if context else ""
            see = f" (see {example})" if example else ""
            raise ValueError(
                f"{os.fspath(path)}: YAML syntax error{where} (not valid YAML): {problem}{also}; "
                f"check the indentation and the quoting there{see}"
            ) from None


def at(container, key=None, value=True):
    """``"line L, column C"`` of ``container[key]`` (its value, or its key with
    ``value=False``); ``""`` where the place is unknown (data not read by `load`)."""
    if isinstance(container, MarkedList):
        marks = container.marks
        place = marks[key] if isinstance(key, int) and 0 <= key < len(marks) else None
    elif isinstance(container, MarkedDict):
        place = (container.value_marks if value else container.marks).get(key)
    else:
        place = None
    return f"line {place[0]}, column {place[1]}" if place else ""


def where(path, container=None, key=None, value=True):
    """``"path, line L, column C"`` (or ``"path"`` where the place is unknown)."""
    place = at(container, key, value) if container is not None else ""
    return f"{os.fspath(path)}, {place}" if place else os.fspath(path)
