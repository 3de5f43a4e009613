"""Atomic, verified writes: incomplete images rejected, umask respected, whole folders, locks, leftovers."""

import os
import resource
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.io.atomic_io import (TEMP_MARK, FolderBusyError, atomic_folder, atomic_path, folder_lock,
                                         remove_temp_files, write_json)
from hecktor_nnunet.io.image_files import IncompleteFileError, verify_image_file, write_image


def _image(shape=(40, 64, 64), dtype=np.int16):
    arr = np.random.default_rng(0).normal(0, 300, shape).astype(dtype)
    return sitk.GetImageFromArray(arr)


def _limit_file_size(n_bytes):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))


@pytest.mark.parametrize("gzip_level", [None, 1])
def test_file_size_limit_is_a_write_error_and_leaves_nothing(tmp_path, gzip_level):
    # SimpleITK prints "wrote only 0 of N bytes" and returns normally; the write must still fail
    script = (
        "import sys, numpy as np, SimpleITK as sitk\n"
        "from hecktor_nnunet.io.atomic_io import WriteError\nfrom hecktor_nnunet.io.image_files import write_image\n"
        "img = sitk.GetImageFromArray(np.random.default_rng(0).normal(0, 300, (40, 64, 64)).astype(np.int16))\n"
        "try:\n"
        f"    write_image(img, {str(tmp_path / 'ct.nii.gz')!r}, gzip_level={gzip_level})\n"
        "except WriteError as e:\n"
        "    print('WriteError:', e.strerror)\n"
        "    sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          preexec_fn=_limit_file_size(64 * 1024))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert str(tmp_path / "ct.nii.gz") in proc.stdout and "incomplete" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha"])
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.999])
def test_truncated_images_are_detected(tmp_path, suffix, fraction):
    path = tmp_path / f"img{suffix}"
    write_image(_image(), path)
    verify_image_file(path, (64, 64, 40))
    data = path.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(IncompleteFileError) as e:
        verify_image_file(cut)
    assert e.value.filename == str(cut)
    with pytest.raises(IncompleteFileError, match="header says size"):
        verify_image_file(path, (64, 64, 41))


def test_multi_member_and_corrupt_gzip(tmp_path):
    import gzip

    path = tmp_path / "img.nii.gz"
    write_image(_image(), path)
    raw = gzip.decompress(path.read_bytes())
    multi = tmp_path / "multi.nii.gz"  # two gzip members (e.g. bgzip): the trailer holds only the last length
    multi.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    verify_image_file(multi)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[-4:] = b"\0\0\0\0"  # a wrong length sends the check down the full decompression, which sees the damage
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(IncompleteFileError, match="corrupt|truncated"):
        verify_image_file(bad)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_respect_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_json({"a": 1}, tmp_path / "a.json")
        write_image(_image((4, 4, 4)), tmp_path / "b.nii.gz")
        with atomic_folder(tmp_path / "model") as tmp:
            write_json({}, tmp / "x.json")
    finally:
        os.umask(old)
    for name, full in (("a.json", 0o666), ("b.nii.gz", 0o666), ("model", 0o777)):
        assert (tmp_path / name).stat().st_mode & 0o777 == full & ~mask, name


def test_atomic_folder_is_written_whole_or_refused(tmp_path):
    out = tmp_path / "model"
    with atomic_folder(out) as tmp:
        (tmp / "old_only.txt").write_text("x")
        (tmp / "both.txt").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        with atomic_folder(out):
            pass
    with pytest.raises(RuntimeError):
        with atomic_folder(out, overwrite=True) as tmp:
            (tmp / "both.txt").write_text("half")
            raise RuntimeError("killed half-way")
    assert (out / "both.txt").read_text() == "old"  # an interrupted write leaves the old folder as it was
    with atomic_folder(out, overwrite=True) as tmp:
        (tmp / "both.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["both.txt"]
    assert (out / "both.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left


def test_folder_lock_makes_a_second_process_fail_fast(tmp_path):
    script = ("from hecktor_nnunet.io.atomic_io import folder_lock, FolderBusyError\n"
              f"try:\n    with folder_lock({str(tmp_path)!r}, 'second'):\n        print('GOT IT')\n"
              "except FolderBusyError as e:\n    print('BUSY', e.strerror)\n")
    with folder_lock(tmp_path, "first run"):
        with pytest.raises(FolderBusyError, match="first run"):
            with folder_lock(tmp_path, "same process"):
                pass
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stdout
        assert out.startswith("BUSY") and f"pid {os.getpid()}" in out
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("GOT IT")


def test_remove_temp_files_removes_only_leftovers(tmp_path):
    keep = [tmp_path / "CHUM-001_0000.nii.gz", tmp_path / ".hidden", tmp_path / "x.hecktor-tmp-1.json"]
    for p in keep:
        p.write_text("")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{")
            os.link(tmp, tmp_path / f".a.json{TEMP_MARK}killed.json")  # what a SIGKILL would leave
            raise RuntimeError
    (tmp_path / f".model{TEMP_MARK}abc").mkdir()
    removed = remove_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == [f".a.json{TEMP_MARK}killed.json", f".model{TEMP_MARK}abc"]
    assert sorted(tmp_path.iterdir()) == sorted(keep)


def test_own_gzip_level_writes_an_ordinary_nifti_gz_and_leaves_no_temporary_file(tmp_path):
    import gzip

    img = _image()
    img.SetSpacing((0.98, 0.98, 3.0))
    img.SetOrigin((-250.0, -240.0, 12.5))
    write_image(img, tmp_path / "sitk.nii.gz")
    write_image(img, tmp_path / "fast.nii.gz", gzip_level=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.nii.gz", "sitk.nii.gz"]
    verify_image_file(tmp_path / "fast.nii.gz", (64, 64, 40))
    assert gzip.decompress((tmp_path / "fast.nii.gz").read_bytes()) == \
        gzip.decompress((tmp_path / "sitk.nii.gz").read_bytes())  # the same NIfTI bytes, compressed otherwise
    back = sitk.ReadImage(str(tmp_path / "fast.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))
    ref = sitk.ReadImage(str(tmp_path / "sitk.nii.gz"))  # NIfTI keeps float32 geometry: compare like with like
    assert back.GetSpacing() == ref.GetSpacing() and back.GetOrigin() == ref.GetOrigin()
    assert back.GetDirection() == ref.GetDirection()
