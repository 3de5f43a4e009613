"""A user's bad day, for real: SIGKILL at several points, a file-size limit, a full disk, two runs at once.

Conversion (``hecktor-convert``) and radiomics (``hecktor-radiomics --cache``) run in subprocesses
that are killed or starved; each resume must equal a clean run (every converted file byte for
byte, the features table value for value) and leave no temporary file behind. The module prints
a summary (kills that landed, resumes equal to a clean run, leftovers found) at its end.

The full disk is a small tmpfs when this machine lets the test mount one (root with
CAP_SYS_ADMIN); otherwise SimpleITK's writer is replaced in-process by one that stops writing when
a byte budget is spent and returns normally, which is what SimpleITK does on a full disk.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from hecktor_nnunet.io.atomic_io import TEMP_MARK
from hecktor_nnunet.io.image_files import verify_image_file
from hecktor_nnunet.dataset_conversion.convert import convert_release
from hecktor_nnunet.prognosis.radiomics import extract_features
from hecktor_nnunet.prognosis.radiomics_settings import DEFAULT_PARAMS
from hecktor_nnunet.io.release import read_release

DATASET = "Dataset530_HECKTOR2025"
SUMMARY: list[dict] = []


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    rows = pd.DataFrame(SUMMARY)
    if len(rows):
        table = rows.groupby(["tool", "fault"], sort=False).agg(
            runs=("fault", "size"), kills_landed=("killed", "sum"), resumes_equal_to_clean=("equal", "sum"),
            leftovers_found=("leftovers", "sum")).reset_index()
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():  # shown in `make test`'s output, not captured
            print("\n\nfault injection summary:\n" + table.to_string(index=False))


def _cli(module: str, *args) -> list[str]:
    return [sys.executable, "-m", f"hecktor_nnunet.cli.{module}", *map(str, args)]


STATE = {".hecktor.lock", ".hecktor_cases", ".hecktor_conversion.json"}  # hidden on purpose, kept


def _leftovers(*folders: Path) -> list[Path]:
    """Hidden files other than the tools' state: temporary files of any naming (nnU-Net counts them)."""
    return [p for f in folders if f.exists() for p in f.rglob(".*") if p.name not in STATE]


def _images(ds: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ds)): p.read_bytes() for p in sorted(ds.rglob("*.nii.gz"))
            if not p.name.startswith(".")}


def _kill_when(argv: list[str], condition, timeout: float = 120.0) -> bool:
    """Run ``argv``; SIGKILL it as soon as ``condition()`` holds. Returns whether the kill landed."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - t0 < timeout:
            if condition():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.002)
        raise AssertionError(f"the run ended (status {proc.poll()}) before the kill point: "
                             f"{proc.stderr.read().decode()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


def _any_temp(folder: Path):
    return lambda: folder.is_dir() and any(p.name.startswith(".") for p in os.scandir(folder))


def _n_records(folder: Path, n: int):
    return lambda: folder.is_dir() and sum(p.name.endswith(".json") and not p.name.startswith(".")
                                           for p in os.scandir(folder)) >= n


# --- conversion ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A tiny release of 3 labelled patients and 1 unlabelled one (8 converted images, 3 labels)."""
    from hecktor_nnunet.demo.synth import generate_release

    root = tmp_path_factory.mktemp("faults") / "release"
    generate_release(root, 3, size="tiny", seed=11, n_unlabelled=1, quiet=True)
    return root


@pytest.fixture(scope="module")
def clean(release, tmp_path_factory) -> dict[str, bytes]:
    raw = tmp_path_factory.mktemp("clean_raw")
    res = convert_release(release, 530, raw_dir=raw, quiet=True)
    assert res.ok
    return _images(res.dataset_dir)


def _check_resume(release, raw: Path, clean: dict, fault: str, killed: bool, **kwargs) -> None:
    ds = raw / DATASET
    for path in ds.rglob("*.nii.gz"):  # nothing half-written under a final name, even right after the fault
        if not path.name.startswith("."):
            verify_image_file(path)
    res = convert_release(release, 530, raw_dir=raw, quiet=True, **kwargs)
    equal = res.ok and _images(ds) == clean
    leftovers = _leftovers(ds)
    manifest = json.loads((ds / "conversion_manifest.json").read_text())
    SUMMARY.append({"tool": "convert", "fault": fault, "killed": killed, "equal": equal,
                    "leftovers": len(leftovers)})
    assert equal, sorted(set(_images(ds)) ^ set(clean))
    assert not leftovers
    assert sorted(manifest["cases"]) == sorted(c.patient_id for c in read_release(release).cases)


@pytest.mark.parametrize("point,workers", [("the first image write", 1), ("2 finished cases", 1),
                                           ("2 finished cases", 2), ("3 of 4 finished cases", 1)])
def test_convert_killed_then_resumed_equals_a_clean_run(release, clean, tmp_path, point, workers):
    raw = tmp_path / "raw"
    ds = raw / DATASET
    condition = {"the first image write": _any_temp(ds / "imagesTr"),
                 "2 finished cases": _n_records(ds / ".hecktor_cases", 2),
                 "3 of 4 finished cases": _n_records(ds / ".hecktor_cases", 3)}[point]
    killed = _kill_when(_cli("convert", release, "-d", 530, "-o", raw, "-np", workers, "--quiet"), condition)
    _check_resume(release, raw, clean, f"SIGKILL at {point} (-np {workers})", killed)


def test_file_size_limit_fails_every_case_by_name_then_resumes(release, clean, tmp_path):
    raw = tmp_path / "raw"
    limit = 200 * 1024  # above every CT, below every PET of a tiny release
    proc = subprocess.run(_cli("convert", release, "-d", 530, "-o", raw, "--quiet"), capture_output=True,
                          text=True, timeout=300,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    ids = sorted(c.patient_id for c in read_release(release).cases)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for pid in ids:
        assert any(pid in line and "write_failed" in line and "_0001.nii.gz" in line
                   for line in proc.stderr.splitlines()), pid
    assert not [p for p in (raw / DATASET).rglob("*.nii.gz")]  # no half case, no cut file
    _check_resume(release, raw, clean, "ulimit -f 200 KiB", False)


def _try_mount_tmpfs(mountpoint: Path, size_kib: int) -> bool:
    mountpoint.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mountpoint)],
                          capture_output=True)
    return proc.returncode == 0


def test_full_disk_ends_in_a_clear_error_naming_cases_then_resumes(release, clean, tmp_path, monkeypatch):
    mnt = tmp_path / "disk"
    size_kib = 700  # the release converts to ~1.5 MB
    mounted = shutil.which("mount") is not None and _try_mount_tmpfs(mnt, size_kib)
    try:
        if mounted:
            proc = subprocess.run(_cli("convert", release, "-d", 530, "-o", mnt, "--quiet"),
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode in (1, 2), proc.stderr[-3000:]
            err = proc.stderr
            assert "Traceback" not in err and "error:" in err
            assert "No space left on device" in err or "incomplete" in err
            failed = [c.patient_id for c in read_release(release).cases if c.patient_id in err]
            assert failed  # the cases that could not be written are named
            subprocess.run(["mount", "-o", f"remount,size={40 * 1024}k", str(mnt)], check=True)
            _check_resume(release, mnt, clean, f"full disk (tmpfs {size_kib} KiB)", False)
        else:
            _patched_full_disk(release, clean, tmp_path, monkeypatch, size_kib * 1024)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def _patched_full_disk(release, clean, tmp_path, monkeypatch, budget: int) -> None:
    """No tmpfs: SimpleITK's writer stops when ``budget`` bytes are spent and returns normally."""
    real = sitk.WriteImage
    left = {"bytes": budget}

    def full_disk_writer(image, path, *args, **kwargs):
        real(image, path, *args, **kwargs)
        size = os.path.getsize(path)
        keep = max(0, min(size, left["bytes"]))
        left["bytes"] -= keep
        if keep < size:
            os.truncate(path, keep)
            print(f"** ERROR: NWAD: wrote only {keep} of {size} bytes to file", file=sys.stderr)

    monkeypatch.setattr(sitk, "WriteImage", full_disk_writer)
    raw = tmp_path / "raw"
    res = convert_release(release, 530, raw_dir=raw, quiet=True)
    assert res.failed and all(p.code == "write_failed" and p.file.endswith(".nii.gz")
                              for p in res.problems if p.patient_id in res.failed and not p.usable)
    monkeypatch.setattr(sitk, "WriteImage", real)
    _check_resume(release, raw, clean, "full disk (patched writer)", False)


def test_two_runs_at_once_the_second_fails_fast(release, clean, tmp_path):
    raw = tmp_path / "raw"
    ds = raw / DATASET
    first = subprocess.Popen(_cli("convert", release, "-d", 530, "-o", raw, "--quiet"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not _n_records(ds / ".hecktor_cases", 1)():
            assert first.poll() is None and time.monotonic() - t0 < 120, first.stderr.read()
            time.sleep(0.002)
        first.send_signal(signal.SIGSTOP)  # a first run that is still writing, however fast this machine is
        for extra in ([], ["--overwrite", "--crop", "none"]):
            second = subprocess.run(_cli("convert", release, "-d", 530, "-o", raw, "--quiet", *extra),
                                    capture_output=True, text=True, timeout=120)
            assert second.returncode == 2 and f"pid {first.pid}" in second.stderr, second.stderr
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
        first.wait()
        first.stderr.close()
    equal = _images(ds) == clean
    SUMMARY.append({"tool": "convert", "fault": "second run while the first writes", "killed": False,
                    "equal": equal, "leftovers": len(_leftovers(ds))})
    assert equal and not _leftovers(ds)
    assert json.loads((ds / "conversion_manifest.json").read_text())["settings"]["crop"] == "overlap"


# --- radiomics -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def radiomics_inputs(release, tmp_path_factory):
    d = tmp_path_factory.mktemp("radiomics_faults")
    masks = d / "masks"
    masks.mkdir()
    for case in [c for c in read_release(release).cases if c.labelled]:
        shutil.copy(case.label, masks / case.label.name)
    params = {}
    for modality, shipped in DEFAULT_PARAMS.items():  # the shipped params, first-order features only (fast)
        p = yaml.safe_load(shipped.read_text())
        p["featureClass"] = {"firstorder": None}
        params[modality] = d / f"{modality}.yaml"
        params[modality].write_text(yaml.safe_dump(p))
    clean = extract_features(release, masks, None, params_pet=params["PET"], params_ct=params["CT"],
                             quiet=True)
    return masks, params, clean


def test_radiomics_killed_twice_then_resumed_equals_a_clean_run(release, radiomics_inputs, tmp_path):
    masks, params, clean = radiomics_inputs
    cache, out = tmp_path / "cache", tmp_path / "features.csv"
    argv = _cli("radiomics", "--release", release, "--masks", masks, "-o", out, "--cache", cache,
                "--params-pet", params["PET"], "--params-ct", params["CT"], "--quiet")
    kills = [_kill_when(argv, _n_records(cache, n)) for n in (1, 2)]
    df = extract_features(release, masks, out, params_pet=params["PET"], params_ct=params["CT"],
                          cache_dir=cache, quiet=True)
    assert df.attrs["radiomics"]["n_cached"] >= 2
    equal = df.equals(clean) and pd.read_csv(out).shape == clean.shape
    leftovers = _leftovers(cache, tmp_path)
    for n, killed in zip((1, 2), kills):
        SUMMARY.append({"tool": "radiomics", "fault": f"SIGKILL after {n} cached patient(s)", "killed": killed,
                        "equal": equal, "leftovers": len(leftovers)})
    pd.testing.assert_frame_equal(df, clean)
    assert not leftovers


def test_radiomics_cache_leftovers_are_removed(release, radiomics_inputs, tmp_path):
    masks, params, clean = radiomics_inputs
    cache = tmp_path / "cache"
    cache.mkdir()
    stray = cache / f".{next(iter(clean['PatientID']))}.json{TEMP_MARK}{uuid.uuid4().hex[:8]}.json"
    stray.write_text("")  # what a SIGKILL inside the cache write leaves
    df = extract_features(release, masks, None, params_pet=params["PET"], params_ct=params["CT"],
                          cache_dir=cache, quiet=True)
    pd.testing.assert_frame_equal(df, clean)
    SUMMARY.append({"tool": "radiomics", "fault": "temporary cache file left by a kill", "killed": False,
                    "equal": True, "leftovers": len(_leftovers(cache))})
    assert not _leftovers(cache)
