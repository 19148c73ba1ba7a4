"""A folder synced to disk: a file's new name (a rename or a link) survives a power cut only once
its folder is, not when the file's data is. Shared by the job side (a spooled ping) and the store
(a backup's copy)."""

from __future__ import annotations

import contextlib
import os


def sync_folder(folder: str | os.PathLike[str]) -> None:
    """Best effort: a file system that cannot sync a folder leaves the name to its own flush, and
    what was written is kept either way."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
