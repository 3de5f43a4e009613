"""Conversion speed and memory on realistic-size synthetic cases, next to the I/O floor.

The floor reads the same inputs (CT, PET, label) and writes the very images our conversion
wrote (loaded beforehand, untimed) with the same compression, doing nothing else; it is measured
in the same run, in the same kind of worker process, right after ours on the same case. Run by hand:  python benchmarks/convert.py --cases 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk


def _floor(case, out: Path, reference: Path) -> float:
    outputs = [sitk.ReadImage(str(p)) for p in sorted(reference.glob("*.nii.gz"))]  # untimed
    t = time.perf_counter()
    for path in (case.ct, case.pet, case.label):
        sitk.ReadImage(str(path))
    for i, img in enumerate(outputs):
        sitk.WriteImage(img, str(out / f"{i}.nii.gz"), useCompression=True)
    return time.perf_counter() - t


def _ours(case, out: Path, crop: str) -> float:
    from hecktor_nnunet.checks import load_case
    from hecktor_nnunet.dataset_conversion.convert import convert_loaded
    from hecktor_nnunet.dataset_conversion.settings import ConversionSettings

    t = time.perf_counter()
    convert_loaded(load_case(case), ConversionSettings(crop=crop), out, out)
    return time.perf_counter() - t


def _child(kind: str, case, out: str, arg, q) -> None:
    try:
        sec = _floor(case, Path(out), Path(arg)) if kind == "floor" else _ours(case, Path(out), arg)
        q.put((sec, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    except Exception as e:  # noqa: BLE001 - reported by the parent instead of hanging it
        q.put(e)


def measure(kind: str, case, out: Path, arg) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one case in a fresh worker process."""
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=_child, args=(kind, case, str(out), str(arg), q))
    p.start()
    res = q.get()
    p.join()
    if isinstance(res, Exception):
        raise RuntimeError(f"{kind} failed on {case.patient_id}") from res
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--size", default="realistic")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "convert.json"))
    a = ap.parse_args()
    from hecktor_nnunet.atomic_io import write_json
    from hecktor_nnunet.release import read_release
    from hecktor_nnunet.synth import generate_release

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_release(tmp / "rel", a.cases, size=a.size, seed=0)
        cases = [c for c in read_release(tmp / "rel").cases if c.labelled]
        rows = []
        for case in cases:
            row = {"patient_id": case.patient_id, "ct_size": list(sitk.ReadImage(str(case.ct)).GetSize())}
            for crop in ("overlap", "headneck"):
                ours = tmp / f"ours_{crop}_{case.patient_id}"
                floor = tmp / f"floor_{crop}_{case.patient_id}"
                ours.mkdir(), floor.mkdir()
                sec, mib = measure("ours", case, ours, crop)
                row[f"ours_{crop}_s"], row[f"ours_{crop}_peak_mib"] = round(sec, 3), round(mib, 1)
                sec, mib = measure("floor", case, floor, ours)
                row[f"floor_{crop}_s"], row[f"floor_{crop}_peak_mib"] = round(sec, 3), round(mib, 1)
                row[f"ratio_{crop}"] = round(row[f"ours_{crop}_s"] / row[f"floor_{crop}_s"], 3)
            rows.append(row)
            print(row)
    mean = lambda k: round(sum(r[k] for r in rows) / len(rows), 3)  # noqa: E731
    summary = {"machine": f"{platform.machine()} {platform.processor() or ''} {mp.cpu_count()} cores".strip(),
               "size": a.size, "cases": rows,
               "mean": {k: mean(k) for k in rows[0] if k.endswith(("_s", "_mib")) or k.startswith("ratio")}}
    write_json(summary, a.out)
    print(json.dumps(summary["mean"], indent=2))


if __name__ == "__main__":
    main()
