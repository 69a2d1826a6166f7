"""Files and folders as a user expects them: modes from their umask, private files for
secrets, and a temporary sibling folder that is swapped into place when complete."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["make_private_file", "shared_mode", "temporary_sibling"]


def shared_mode(directory: bool) -> int:
    """The mode ``open()`` or ``mkdir()`` would give under the current umask.

    ``tempfile`` makes 0700 folders and 0600 files whatever the umask; a checkpoint or
    an LM cache made that way could not be read by the other users of a shared file
    system (e.g. RLlib workers running as another user)."""
    umask = os.umask(0o022)  # read it (the only way) and put it back at once
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def temporary_sibling(target: Path) -> Path:
    """A new empty folder beside ``target`` (same file system, so ``rename`` is atomic),
    with the mode a ``mkdir`` would give."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, shared_mode(directory=True))
    return tmp


def make_private_file(path: Path) -> None:
    """Create ``path`` (if missing) readable and writable by its owner only: for files
    that hold annotators' names or access tokens, whatever the umask."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
