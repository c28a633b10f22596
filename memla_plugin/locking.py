"""One inter-process lock for every file the project writes from several processes at once.

The default-model cache, the neuron cache and the benchmark's result store all follow the
same pattern: take ``<target>.lock`` next to the file or directory, re-read, write atomically,
release. :func:`file_lock` is that lock (``filelock``, which uses ``fcntl`` on POSIX and
``msvcrt`` on Windows), so there is one implementation to reason about.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


def lock_path(target: PathLike) -> Path:
    """``<target>.lock`` in the same directory (the convention every caller shares)."""
    target = Path(target)
    return target.parent / (target.name + ".lock")


@contextlib.contextmanager
def file_lock(
    target: PathLike, *, on_wait: Optional[Callable[[str], None]] = None, timeout: Optional[float] = None
) -> Iterator[None]:
    """Hold the exclusive lock of ``target`` for the ``with`` body.

    ``on_wait(lock_file)`` is called once when another process holds the lock, so long waits
    (a model conversion) can say why nothing happens; ``timeout=None`` waits forever.
    """
    from filelock import FileLock, Timeout

    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait(str(path))
        lock.acquire(timeout=-1 if timeout is None else timeout)
    try:
        yield
    finally:
        lock.release()
