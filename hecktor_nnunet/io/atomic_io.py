"""Atomic, verified writes: every output goes to a temporary file in its folder, is checked, then renamed.

What this module guarantees (see docs/reference/robustness.md):

- A file under its final name was written completely: text and tables by Python (which raises on a
  short write), images by SimpleITK and then checked
  (:func:`~hecktor_nnunet.io.image_files.write_image`).
- An interrupted run leaves at most hidden temporary files (``.<name>.hecktor-tmp-XXXXXXXX<suffix>``)
  that :func:`remove_temp_files` recognises and a resumed run removes.
- Files and folders get the permissions the process's umask asks for (``mkstemp`` alone gives 0600).

Temporary files are not fsynced: a kill, a full disk or a crash of the program are covered, a power
cut or kernel crash right after a run may lose the last files written (the resumed run redoes them,
because the case records check that their outputs exist with the recorded size and time).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

TEMP_MARK = ".hecktor-tmp-"  # in every temporary name: .<final name>.hecktor-tmp-XXXXXXXX<suffix>
LOCK_NAME = ".hecktor.lock"


class WriteError(OSError):
    """An output could not be written completely; the message names the final path."""


class FolderBusyError(OSError):
    """Another process holds the folder's lock."""


def current_umask() -> int:
    """The process's umask (read without changing it where ``/proc`` allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _suffix(name: str) -> str:
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix or ".tmp"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary files or folders."""
    return name.startswith(".") and TEMP_MARK in name


def remove_temp_files(folder: str | os.PathLike, target: str | None = None) -> list[Path]:
    """Remove the temporary files and folders an interrupted write left in ``folder``.

    Parameters
    ----------
    folder : path
        Searched non-recursively; a missing folder has none.
    target : str, optional
        Only the leftovers of this final name.

    Returns
    -------
    list of Path
        What was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefix = f".{target}{TEMP_MARK}" if target else None
    removed = []
    for p in folder.iterdir():
        if not is_temp_name(p.name) or (prefix and not p.name.startswith(prefix)):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; if the block succeeds, check it and rename it onto ``path``.

    The temporary name keeps the suffix (``.nii.gz``, ``.parquet``) so writers that pick a format
    from the extension still work. The file gets mode ``0o666 & ~umask`` before the rename.

    Parameters
    ----------
    verify : callable, optional
        Called with the temporary path before the rename; raises to reject the file.

    Raises
    ------
    WriteError
        When writing, checking or renaming fails (full disk, file-size limit, permissions); the
        message names ``path`` and nothing is left under it or under the temporary name.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=_suffix(path.name), dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        if verify is not None:
            verify(tmp_path)
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except OSError as e:
        if isinstance(e, WriteError):
            raise
        reason = e.strerror or str(e)
        raise WriteError(e.errno or errno.EIO, f"cannot write {path}: {reason}", str(path)) from e
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_folder(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; if the block succeeds it replaces ``path`` whole.

    Nothing of an earlier folder survives next to the new files, and an interrupted block leaves
    ``path`` as it was.

    Raises
    ------
    FileExistsError
        At entry, when ``path`` exists and is not an empty folder and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} already exists and is not empty; pass --overwrite to replace it "
                              "(it is replaced whole, nothing of it is kept)")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_temp_files(path.parent, target=path.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TEMP_MARK}", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}{TEMP_MARK}old-", dir=path.parent))
            os.rename(path, old / path.name)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created) for the block; a second holder fails at once.

    The lock is ``flock`` on ``<folder>/.hecktor.lock``, released by the system when the process
    ends, however it ends.

    Raises
    ------
    FolderBusyError
        When another process holds the lock (the message names its pid and command).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise FolderBusyError(errno.EBUSY, f"{folder} is being written by another run ({holder}); wait for it "
                                           f"to finish, or write elsewhere") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, {what}\n".encode())
        yield
    finally:
        os.close(fd)


def file_stamp(path: str | os.PathLike) -> dict[str, int]:
    """Size (bytes) and modification time (ns) of a file: what a resumed run compares."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically."""
    data = text.encode()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(obj: Any, path: str | os.PathLike, indent: int = 2) -> None:
    """Write JSON atomically (numpy scalars converted)."""
    write_text(json.dumps(obj, indent=indent, default=_json_default) + "\n", path)


def write_table(df, path: str | os.PathLike, **kwargs) -> None:
    """Write a pandas DataFrame atomically as CSV or Parquet (chosen by extension)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, **kwargs)
        else:
            df.to_csv(tmp, **{"index": False, **kwargs})


def json_safe(obj: Any) -> Any:
    """A JSON-safe copy: NaN/inf -> None, numpy scalars -> Python numbers, paths -> str."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
