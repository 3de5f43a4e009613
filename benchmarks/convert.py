"""Conversion speed and memory on realistic-size synthetic cases, next to the I/O floor, in interleaved rounds.

The floor reads the same inputs (CT, PET, label) and writes the very images our conversion wrote
(loaded beforehand, untimed) with the same compression, doing nothing else. Each round converts
every case with ours and measures the floor on it, each in a fresh worker process, alternating
which goes first; the figures are medians over rounds (wall and CPU seconds, and the per-pair
ratio ours / floor), so one slow moment on a shared machine does not make the result.

Ours includes the checks that make outputs trustworthy: every input image is checked complete
(gzip trailer against the NIfTI header) and every output is checked after it is written, before
it is renamed; ``verify_s`` is the time of those checks alone, measured on the same files.

Run by hand:  python benchmarks/convert.py --cases 2 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

CROPS = ("overlap", "headneck")


def _floor(case, out: Path, reference: Path) -> tuple[float, float]:
    outputs = [sitk.ReadImage(str(p)) for p in sorted(reference.glob("*.nii.gz"))]  # untimed
    t = time.perf_counter(), time.process_time()
    for path in (case.ct, case.pet, case.label):
        sitk.ReadImage(str(path))
    for i, img in enumerate(outputs):
        sitk.WriteImage(img, str(out / f"{i}.nii.gz"), useCompression=True)
    return time.perf_counter() - t[0], time.process_time() - t[1]


def _ours(case, out: Path, crop: str) -> tuple[float, float]:
    from hecktor_nnunet.io.checks import load_case
    from hecktor_nnunet.dataset_conversion.cases import convert_loaded
    from hecktor_nnunet.dataset_conversion.settings import ConversionSettings

    t = time.perf_counter(), time.process_time()
    convert_loaded(load_case(case), ConversionSettings(crop=crop), out, out)
    return time.perf_counter() - t[0], time.process_time() - t[1]


def _child(kind: str, case, out: str, arg, q) -> None:
    try:
        wall, cpu = _floor(case, Path(out), Path(arg)) if kind == "floor" else _ours(case, Path(out), arg)
        q.put((wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    except Exception as e:  # noqa: BLE001 - reported by the parent instead of hanging it
        q.put(e)


def measure(kind: str, case, out: Path, arg) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one case in a fresh worker process."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(kind, case, str(out), str(arg), q))
    p.start()
    res = q.get()
    p.join()
    if isinstance(res, Exception):
        raise RuntimeError(f"{kind} failed on {case.patient_id}") from res
    return res


def verify_seconds(case, outputs: Path, repeats: int = 5) -> float:
    """Median time of the integrity checks ours adds: every input and every output image checked."""
    from hecktor_nnunet.io.atomic_io import file_stamp
    from hecktor_nnunet.io.image_files import verify_image_file

    files = [case.ct, case.pet, case.label]
    written = sorted(outputs.glob("*.nii.gz"))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for p in files:
            verify_image_file(p)
        for p in written:
            verify_image_file(p)
            file_stamp(p)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="realistic")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "convert.json"))
    a = ap.parse_args()
    from hecktor_nnunet.io.atomic_io import write_json
    from hecktor_nnunet.io.release import read_release
    from hecktor_nnunet.demo.synth import generate_release

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_release(tmp / "rel", a.cases, size=a.size, seed=0)
        cases = [c for c in read_release(tmp / "rel").cases if c.labelled]
        samples: dict[tuple[str, str], list[dict]] = {(c.patient_id, crop): [] for c in cases for crop in CROPS}
        references = {}
        for r in range(a.rounds):
            for case in cases:
                for crop in CROPS:
                    key = (case.patient_id, crop)
                    ours_dir = tmp / f"ours_{crop}_{case.patient_id}_{r}"
                    ours_dir.mkdir()
                    if key not in references:  # the floor writes what ours wrote: ours goes first once
                        references[key] = ours_dir
                    order = ("ours", "floor") if r % 2 == 0 else ("floor", "ours")
                    row = {}
                    for kind in order:
                        if kind == "ours":
                            row["ours"] = measure("ours", case, ours_dir, crop)
                        else:
                            floor_dir = tmp / f"floor_{crop}_{case.patient_id}_{r}"
                            floor_dir.mkdir()
                            row["floor"] = measure("floor", case, floor_dir, references[key])
                    samples[key].append(row)
                    print(r, key, {k: [round(x, 3) for x in v] for k, v in row.items()}, flush=True)
        verify = {key: verify_seconds(next(c for c in cases if c.patient_id == key[0]), references[key])
                  for key in samples}
        ct_sizes = {c.patient_id: list(sitk.ReadImage(str(c.ct)).GetSize()) for c in cases}
    load_after = os.getloadavg()

    def med(values):
        return round(statistics.median(values), 3)

    per_case, summary = [], {}
    for crop in CROPS:
        pairs = [s for (pid, c), rows in samples.items() if c == crop for s in rows]
        summary[crop] = {
            "ours_s": med([p["ours"][0] for p in pairs]), "floor_s": med([p["floor"][0] for p in pairs]),
            "ratio": med([p["ours"][0] / p["floor"][0] for p in pairs]),
            "ours_cpu_s": med([p["ours"][1] for p in pairs]), "floor_cpu_s": med([p["floor"][1] for p in pairs]),
            "cpu_ratio": med([p["ours"][1] / p["floor"][1] for p in pairs]),
            "ours_peak_mib": round(max(p["ours"][2] for p in pairs), 1),
            "floor_peak_mib": round(max(p["floor"][2] for p in pairs), 1),
            "verify_s": round(statistics.median([v for (pid, c), v in verify.items() if c == crop]), 5),
            "ratio_range": [round(min(p["ours"][0] / p["floor"][0] for p in pairs), 3),
                            round(max(p["ours"][0] / p["floor"][0] for p in pairs), 3)],
        }
        summary[crop]["verify_fraction_of_ours"] = round(summary[crop]["verify_s"] / summary[crop]["ours_s"], 4)
        for (pid, c), rows in samples.items():
            if c == crop:
                per_case.append({"patient_id": pid, "crop": crop, "ct_size": ct_sizes[pid],
                                 "ours_s": med([x["ours"][0] for x in rows]),
                                 "floor_s": med([x["floor"][0] for x in rows]),
                                 "ratio": med([x["ours"][0] / x["floor"][0] for x in rows]),
                                 "verify_s": round(verify[(pid, c)], 5)})
    result = {"machine": f"{platform.machine()} {platform.processor() or ''} {mp.cpu_count()} cores".strip(),
              "size": a.size, "rounds": a.rounds, "n_cases": len(cases),
              "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
              "median": summary, "cases": per_case}
    write_json(result, a.out)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
