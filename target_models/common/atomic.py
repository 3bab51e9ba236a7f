"""Files that several processes may write at once (two evaluations of one organism, tests beside an audit): every
writer has its own temporary name and renames it into place, and the data stages are prepared under a lock."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

console = Console(stderr=True)


def tmp_sibling(path: Path) -> Path:
    """A temporary name beside `path` that no other process uses, so an atomic rename never takes another's file."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


@contextmanager
def exclusive(lock_file: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (released when the process dies, so a kill leaves no stale lock)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"[dim]waiting for another process {what}[/dim]")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
