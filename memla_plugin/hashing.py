"""sha256 of a file's bytes, read in blocks: one helper for every cache and provenance check."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Union


def file_sha256(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path`` without holding it in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
