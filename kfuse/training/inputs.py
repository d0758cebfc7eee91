"""Content hashes of named arrays: the keys of the branch cache and of checkpoints."""

import hashlib

import numpy as np


def data_digest(arrays, y=None):
    """A short content hash of named arrays (and labels): the key of caches and runs."""
    digest = hashlib.sha1()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}{a.shape}{a.dtype}".encode())
        if a.dtype == object:  # strings: their text, not the addresses of the objects
            for item in a.reshape(-1):
                text = item if isinstance(item, bytes) else str(item).encode()
                digest.update(len(text).to_bytes(8, "little") + text)
        else:
            digest.update(a.tobytes())
    if y is not None:
        y = np.ascontiguousarray(y)
        digest.update(f"y{y.shape}{y.dtype}".encode())
        digest.update(y.tobytes())
    return digest.hexdigest()[:16]
