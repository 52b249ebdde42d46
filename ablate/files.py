"""Writing files so that a reader never sees half of one: a temporary file, then a rename."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

TEMP_SUFFIX = ".tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)``, then rename onto ``path`` (readers never see half a file).

    The temporary file has a unique name beside ``path`` (``.NAME.XXXX.tmp``), so two writers never
    share one; it is removed when ``write`` fails. A kill can leave one behind: ``remove_temporaries``."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # as a plain open() would create it (mkstemp makes it private)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(folder: Path) -> None:
    """Remove what killed ``atomic_write`` calls left in ``folder`` (call it while no one else writes there)."""
    for leftover in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full: an ``OSError`` ENOSPC, or a library's error wrapping one
    (safetensors reports ``IoError(Os { code: 28, kind: StorageFull, .. })``)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return any(sign in str(exc) for sign in ("No space left on device", "StorageFull", "Disk quota exceeded"))
