"""Atomic, verified writes: every output goes to a temporary file in its folder, is checked, then renamed.

What this module guarantees (see the README, "Never losing anything"):

- A file under its final name was written completely: text and tables by Python (which raises on a
  short write), images by SimpleITK and then checked with :func:`verify_image_file` (SimpleITK
  reports a failed write, e.g. a full disk or a file-size limit, only by printing a warning and
  leaves a short file behind; the check catches it from the file's own structure).
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
import struct
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import SimpleITK as sitk

TEMP_MARK = ".hecktor-tmp-"  # in every temporary name: .<final name>.hecktor-tmp-XXXXXXXX<suffix>
LOCK_NAME = ".hecktor.lock"


class WriteError(OSError):
    """An output could not be written completely; the message names the final path."""


class IncompleteFileError(OSError):
    """An image file holds fewer bytes than its header declares, or its compressed stream is broken."""


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


# --- image file structure ---------------------------------------------------------------------

_MET_SIZES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
              "MET_DOUBLE": 8}


def _nifti_layout(head: bytes) -> tuple[int, list[int], int] | None:
    """(data offset, dims, data bytes) from a NIfTI-1/2 single-file header, or None if not one."""
    for order in ("<", ">"):
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348 and head[344:347] == b"n+1":
            dim = struct.unpack(order + "8h", head[40:56])
            bitpix = struct.unpack(order + "h", head[72:74])[0]
            offset = int(struct.unpack(order + "f", head[108:112])[0])
            break
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540 and head[4:7] == b"n+2":
            bitpix = struct.unpack(order + "h", head[14:16])[0]
            dim = struct.unpack(order + "8q", head[16:80])
            offset = struct.unpack(order + "q", head[168:176])[0]
            break
    else:
        return None
    n = dim[0]
    if not 1 <= n <= 7 or bitpix <= 0 or any(d < 0 for d in dim[1:n + 1]):
        return None
    dims = list(dim[1:n + 1])
    voxels = 1
    for d in dims:
        voxels *= d
    return offset, dims, voxels * bitpix // 8


def _gunzipped_size(path: Path) -> tuple[int, bool]:
    """Decompressed size of every gzip member of a file and whether the last member is complete.

    Raises
    ------
    IncompleteFileError
        When the stream is corrupt (bad data, CRC or length check).
    """
    total, d = 0, None
    with open(path, "rb") as f:
        try:
            while chunk := f.read(1 << 16):  # small chunks: a chunk of zeros inflates ~1000-fold
                while chunk:
                    if d is None:
                        if not chunk.strip(b"\0"):  # gzip tolerates zero padding after a member
                            break
                        d = zlib.decompressobj(31)
                    total += len(d.decompress(chunk))
                    chunk, d = (d.unused_data, None) if d.eof else (b"", d)
        except zlib.error as e:
            raise IncompleteFileError(errno.EIO, f"corrupt gzip stream ({e})", str(path)) from None
    return total, d is None


def _check_gzip_nifti(path: Path, dims: tuple[int, ...] | None) -> None:
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
        f.seek(0, os.SEEK_END)
        n = f.tell()
        if n >= 4:
            f.seek(n - 4)
            isize = int.from_bytes(f.read(4), "little")
    if raw[:2] != b"\x1f\x8b":  # not compressed after all (readers accept that): check it as .nii
        _check_plain_nifti(path, dims)
        return
    if n < 18:
        raise IncompleteFileError(errno.EIO, f"not a complete gzip file ({n} bytes)", str(path))
    try:
        head = zlib.decompressobj(31).decompress(raw, 540)
    except zlib.error as e:
        raise IncompleteFileError(errno.EIO, f"corrupt gzip stream ({e})", str(path)) from None
    layout = _nifti_layout(head)
    if layout is None:
        if len(head) < 348:
            raise IncompleteFileError(errno.EIO, "too short for a NIfTI header", str(path))
        return  # not a single-file NIfTI: nothing to compare with
    offset, file_dims, data_bytes = layout
    _check_dims(path, file_dims, dims)
    expected = offset + data_bytes
    if isize == expected & 0xFFFFFFFF:  # the gzip trailer records the decompressed length
        return
    total, complete = _gunzipped_size(path)
    if not complete or total < expected:
        raise IncompleteFileError(errno.EIO, f"truncated (the compressed stream ends after {total} of the "
                                             f"{expected} bytes its header declares)", str(path))


def _check_plain_nifti(path: Path, dims: tuple[int, ...] | None) -> None:
    with open(path, "rb") as f:
        layout = _nifti_layout(f.read(540))
        n = os.fstat(f.fileno()).st_size
    if layout is not None:
        _check_dims(path, layout[1], dims)
        if n < layout[0] + layout[2]:
            raise IncompleteFileError(errno.EIO, f"truncated ({n} of {layout[0] + layout[2]} bytes)", str(path))


def _check_dims(path: Path, file_dims: list[int], dims: tuple[int, ...] | None) -> None:
    if dims is not None and tuple(file_dims[:len(dims)]) != tuple(dims):
        raise IncompleteFileError(errno.EIO, f"header says size {file_dims}, expected {list(dims)}", str(path))


def _check_meta(path: Path, dims: tuple[int, ...] | None) -> None:
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
        n = os.fstat(f.fileno()).st_size
    fields, offset = {}, None
    pos = 0
    for line in raw.split(b"\n"):
        pos += len(line) + 1
        key, _, value = line.decode(errors="replace").partition("=")
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            offset = pos
            break
    if offset is None:
        raise IncompleteFileError(errno.EIO, "no complete MetaImage header", str(path))
    if fields["ElementDataFile"] != "LOCAL" or fields.get("ElementType") not in _MET_SIZES:
        return
    file_dims = [int(v) for v in fields.get("DimSize", "").split()]
    _check_dims(path, file_dims, dims)
    if fields.get("CompressedData", "False").lower() == "true":
        if "CompressedDataSize" not in fields:
            return
        expected = int(fields["CompressedDataSize"])
    else:
        expected = _MET_SIZES[fields["ElementType"]] * int(fields.get("ElementNumberOfChannels", 1))
        for d in file_dims:
            expected *= d
    if n - offset < expected:
        raise IncompleteFileError(errno.EIO, f"truncated ({n - offset} of the {expected} data bytes its "
                                             "header declares)", str(path))


def verify_image_file(path: str | os.PathLike, dims: tuple[int, ...] | None = None) -> None:
    """Check that an image file holds every byte its header declares (cheap: no full read when intact).

    ``.nii.gz``: the gzip trailer's length must equal the NIfTI header's offset plus voxel bytes
    (when it does not, the whole stream is decompressed once to tell a truncated or corrupt file
    from a multi-member one). ``.nii``: the file size. ``.mha``: the data size against ``DimSize``
    and ``ElementType`` or ``CompressedDataSize``. Other formats are not checked.

    Parameters
    ----------
    dims : tuple of int, optional
        The size (x, y, z) the header must declare (a check of an image just written).

    Raises
    ------
    IncompleteFileError
        Naming the file and how many bytes are missing.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii", ".mha")) and path.stat().st_size == 0:
        raise IncompleteFileError(errno.EIO, "empty file (0 bytes)", str(path))
    if name.endswith(".nii.gz"):
        _check_gzip_nifti(path, dims)
    elif name.endswith(".nii"):
        _check_plain_nifti(path, dims)
    elif name.endswith(".mha"):
        _check_meta(path, dims)


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> dict[str, int]:
    """Write a SimpleITK image atomically (compressed for ``.nii.gz``/``.mha``), checked before the rename.

    Returns
    -------
    dict
        :func:`file_stamp` of the written file.

    Raises
    ------
    WriteError
        When SimpleITK fails or leaves an incomplete file (full disk, file-size limit).
    """
    size = tuple(image.GetSize())

    def verify(tmp: Path) -> None:
        try:
            verify_image_file(tmp, size)
        except IncompleteFileError as e:
            raise WriteError(e.errno, f"cannot write {path}: SimpleITK left an incomplete file ({e.strerror}); "
                                      "is the disk full or a file-size limit (ulimit -f) set?", str(path)) from e

    with atomic_path(path, verify=verify) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as e:
            last = str(e).strip().splitlines()[-1] if str(e).strip() else "SimpleITK write failed"
            raise WriteError(errno.EIO, f"cannot write {path}: {last}", str(path)) from e
    return file_stamp(path)


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
