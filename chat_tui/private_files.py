"""Files that hold chat messages are their owner's alone.

It sits beside config.py because two layers write such files: the client's cache
(store) and the archive's SQLite database (a face).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def create_private(path: Path) -> None:
    """Create `path` (and its folder, when we create that) readable by its owner only;
    tighten an existing file that others may read. SQLite gives the -wal and -shm files
    the database's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
        if mode & 0o077:
            os.fchmod(descriptor, mode & 0o700)
    finally:
        os.close(descriptor)
