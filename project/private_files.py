"""Files only Switchboard's own user may read: the data directory (0700) and what it holds
(0600): the SQLite database, the secret key, uploads.

Modes are set explicitly after creation, so they do not depend on the umask. Nothing here
tightens an existing path: an operator may have loosened one on purpose (``chat.checks``
warns about it instead). Plain standard library: the settings module uses it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700 for the directory itself."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process created it meanwhile
        path.mkdir(mode=DIR_MODE)
        path.chmod(DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create an empty ``path`` with mode 0600 unless it exists (or its directory does not)."""
    if not path.parent.is_dir():
        return
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)


def sqlite_file(name: str | Path) -> Path | None:
    """The file behind a SQLite database ``NAME``; None for in-memory and URI names."""
    text = str(name)
    return None if text == ":memory:" or text.startswith("file:") or not text else Path(text)


def write_once(path: Path, text: str) -> str:
    """Write ``text`` to a new file ``path`` (mode 0600) and return it; when another process
    got there first, return what that one wrote. The file never exists half-written: the text
    goes to a private temporary file that is then linked into place."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
        os.write(descriptor, text.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return path.read_text()
    finally:
        temporary.unlink()
    return text


def loose_modes(directories: list[Path], files: list[Path]) -> list[str]:
    """A sentence for each existing path that others than its owner may use, with the fix."""
    problems = []
    for path, private_mode in [(d, DIR_MODE) for d in directories] + [
        (f, FILE_MODE) for f in files
    ]:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            problems.append(
                f"{path} has mode {mode:04o}: other users can read it. "
                f"Run `chmod {private_mode:o} {path}`."
            )
    return problems
