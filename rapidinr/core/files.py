"""Atomic file writes: a temporary file in the same folder, fsynced, then renamed over the target.

A reader never sees a half-written file and a killed writer leaves the old file intact; every
file the package writes (``.rinr``, results JSON, checkpoints) goes through :func:`write_atomic`.
"""
from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

from rapidinr.core.errors import UserError


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file and a rename; errors name the path."""
    path = Path(path)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as err:
        raise UserError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def remove_stale_temporaries(path: str | Path, older_than: float) -> list[Path]:
    """Delete temporaries of ``write_atomic(path)`` last modified before ``older_than`` (a time).

    A writer killed between creating its temporary and the rename leaves one behind; a live
    writer's temporary is newer than the caller's start, so it is left alone.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if tmp.is_file() and tmp.stat().st_mtime < older_than:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass  # gone already, or not ours to remove: never fail a finished encode over it
    return removed
