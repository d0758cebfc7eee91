"""Branch and input names TensorFlow can use as name scopes and signature names.

A branch name prefixes every layer of the branch and an input name becomes a SavedModel
signature key, so both must match TensorFlow's name-scope rule: an ASCII letter, digit or
`.` first, then letters, digits, `_`, `.` or `-`. Spaces, `:`, `/`, a leading `_` and
non-ASCII letters are refused at `Branch(...)` / `stack(...)`, with a valid name suggested,
instead of failing later at `predict` or only at export.
"""

import re
import unicodedata

_VALID = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-]*$")


def suggest(name):
    """A valid name close to `name`: accents dropped, other characters turned into `_`."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "_", ascii_name).strip("_")
    return cleaned or "branch"


def check_name(name, kind="branch"):
    """Return `name` if TensorFlow accepts it as a scope / signature name; raise otherwise.

    Example:

    ```python
    from kfuse.utils.names import check_name
    check_name("my_branch")        # 'my_branch'
    try:
        check_name("my branch")
    except ValueError as error:
        print(error)  # ... not a name TensorFlow accepts ... try 'my_branch'
    ```
    """
    if not isinstance(name, str):
        raise TypeError(f"A {kind} name must be a str; received {type(name).__name__} {name!r}")
    if _VALID.match(name):
        return name
    if not name:
        raise ValueError(f"A {kind} name must not be empty")
    bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9_.\-]", c)} | ({"_"} if name[0] == "_" else set()))
    what = ", ".join(repr(c) for c in bad)
    raise ValueError(
        f"{kind.capitalize()} name {name!r} is not a name TensorFlow accepts as a scope or "
        f"signature name (it contains or starts with {what}); use ASCII letters, digits, '_', "
        f"'.', '-', starting with a letter or digit: try {suggest(name)!r}"
    )


def did_you_mean(value, valid, n=1, cutoff=0.6):
    """" Did you mean 'x'?" (or, for `n` > 1, the list of up to `n` close names) for a
    `value` not in `valid`; "" when nothing is close.

    Example:

    ```python
    from kfuse.utils.names import did_you_mean
    did_you_mean("epoch", ["epochs", "batch_size"])  # " Did you mean 'epochs'?"
    ```
    """
    import difflib

    close = difflib.get_close_matches(str(value), list(valid), n=n, cutoff=cutoff)
    if not close:
        return ""
    return f" Did you mean {close[0]!r}?" if n == 1 else f" Did you mean {close}?"
