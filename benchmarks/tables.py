"""Write the documentation's generated tables from their sources; never copy a number by hand.

    python benchmarks/tables.py           # rewrite every generated table in docs/ in place
    python benchmarks/tables.py --check   # exit 1 and name every stale, missing or unknown table

A generated table sits between two markers in any ``docs/**/*.md`` file::

    <!-- table:radiomics:begin -->
    ... (written by this script) ...
    <!-- table:radiomics:end -->

Each name is one function of this module (``TABLES``): the benchmark tables read
``benchmarks/results/<name>.json``; ``trainers`` is ``hecktor-nnunet trainers --markdown``, derived
from the trainer classes; ``gpu_check`` is the GPU check's block (``benchmarks/gpu/report.py``; its "not
run yet" note while ``benchmarks/results/gpu_check.json`` does not exist). Every name must appear at least
once. Files are rewritten atomically (a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
BLOCK = re.compile(r"<!-- table:(?P<name>[a-z0-9_]+):begin -->\n(?P<body>.*?)<!-- table:(?P=name):end -->",
                   re.DOTALL)


def begin_marker(name: str) -> str:
    return f"<!-- table:{name}:begin -->"


def end_marker(name: str) -> str:
    return f"<!-- table:{name}:end -->"


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _f(x: float | None, fmt: str = "{:.2f}", none: str = "never") -> str:
    return none if x is None else fmt.format(x)


# -- one function per table -----------------------------------------------------------------------
def trainers() -> str:
    """The trainer table, from the classes in ``trainers/`` (``hecktor-nnunet trainers --markdown``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from hecktor_nnunet.training.registry import format_table

    return format_table(markdown=True)


def convert() -> str:
    r = _load("convert")
    rows = []
    for crop, m in r["median"].items():
        lo, hi = m["ratio_range"]
        rows.append([f"`--crop {crop}`", f"{m['ours_s']:.2f}", f"{m['floor_s']:.2f}",
                     f"**{m['ratio']:.2f}x** ({lo:.2f}-{hi:.2f})", f"{m['cpu_ratio']:.2f}x",
                     f"{m['ours_peak_mib']:.0f} / {m['floor_peak_mib']:.0f}", f"{m['verify_s'] * 1000:.1f}"])
    la = r["load_average_1min"]
    return "\n".join([f"Medians of {r['rounds']} interleaved rounds x {r['n_cases']} {r['size']} cases "
                      f"({r['machine'].split()[0]}, {' '.join(r['machine'].split()[1:])}, load average "
                      f"{la['before']}-{la['after']}):", ""] + _table(
        ["crop", "ours s/case", "floor s/case", "ratio (pairs)", "CPU ratio", "peak MiB ours / floor",
         "completeness checks, ms/case"], rows))


def evaluate() -> str:
    r = _load("evaluate")
    rows = [["read label map", r["read_s_per_case"]],
            ["all metrics of one patient (`patient_metrics`: Dice, volumes, HD95 both classes, lesions)",
             r["metrics_s_per_case"]],
            ["HD95 alone, both classes, on the full arrays", r["hd95_s_per_case"]],
            ["lesion matching alone", r["lesions_s_per_case"]],
            [f"`evaluate_segmentation` end to end (read, check, metrics, 1000 bootstraps, CSV/JSON/PNG), "
             f"`-np {r['workers']}`", r["evaluate_segmentation_s_per_case"]]]
    size = "x".join(str(s) for s in r["ct_size"])
    return "\n".join([f"{r['cases']} synthetic cases, CT grid {size}, {r['machine']}:", ""]
                     + _table(["step", "seconds per case"], [[a, f"{b:.2f}"] for a, b in rows]))


def radiomics() -> str:
    r = _load("radiomics")
    cpu, la = r["cpu_seconds_per_patient"], r["load_average_1min"]
    floor = r["floor_seconds_per_patient"]
    rows = [["ours: `extract_features` (release read, crop, PET on the crop, PyRadiomics per region and modality, "
             "PET descriptors, table written)", r["seconds_per_patient"], cpu["ours"],
             f"**{r['ratio_to_floor']:.2f}x** (CPU {r['cpu_ratio_to_floor']:.2f}x)"],
            ["floor: read CT, PET and label + PyRadiomics on images already cropped to each region's box",
             floor, cpu["floor"], "1.00x"],
            ["naive: PyRadiomics the plain way on the whole images (PET resampled onto the whole CT grid)",
             r["naive_seconds_per_patient"], cpu["naive"], f"{r['naive_seconds_per_patient'] / floor:.1f}x"]]
    proj, naive = r["projection_hours_1123"], r["naive_projection_hours_1123"]
    return "\n".join(
        [f"{r['cases']} {r['size']} cases, {r['columns']} columns, medians of {r['rounds']} rounds, "
         f"load average {la['end']}-{la['start']} (median {la['median']}):", ""]
        + _table(["way", "s/patient (wall)", "CPU s/patient", "vs floor"],
                 [[a, f"{b:.2f}", f"{c:.2f}", d] for a, b, c, d in rows])
        + ["", f"Largest relative difference from the plain PyRadiomics run: {r['max_relative_difference_vs_plain']:g}. "
               f"The 1123-study cohort projects to {proj['2_cores']} h on 2 cores and {proj['16_cores']} h on 16 "
               f"(naive: {naive['2_cores']} h and {naive['16_cores']} h)."])


def prognosis_training() -> str:
    r = _load("prognosis_training")
    rows = []
    for name, t in r["timings"].items():
        rows.append([f"{name.replace('/', ' ')} ({t['candidates']} candidates)", f"{t['seconds']:.1f}",
                     t["patients"], t["columns_in"], t["selected"], t["fitted"]])
    return "\n".join([f"{r['machine']}, {r['threads']} thread:", ""]
                     + _table(["model", "seconds", "patients", "input columns", "selected", "fitted"], rows))


def prognosis_models() -> str:
    """Per task: every model's mean score and gap to the oracle over the seeds of the planted cohort."""
    r = _load("prognosis_models")
    out = [f"{r['machine']}, {r['date']}; {r['patients']} patients per cohort, 5 centre-stratified outer folds, "
           f"{len(next(iter(r['tasks'].values())))} seeds (mean over seeds; in brackets the worst and best gap "
           "to the oracle):", ""]
    for task, runs in r["tasks"].items():
        metric = "C-index" if task == "rfs" else "balanced accuracy"
        oracle = np.mean([x["oracle"] for x in runs])
        rows = []
        named = [(m, m) for m in runs[0]["scores"]] + [("well-specified (told the true inputs)", "well_specified"),
                                                       ("oracle (the planted truth)", "oracle")]
        for label, key in named:
            values = [x["scores"][key] if key in x["scores"] else x[key] for x in runs]
            gaps = [v - x["oracle"] for v, x in zip(values, runs)]
            shown = "**auto** (default)" if label == "auto" else label
            rows.append([shown, f"{np.mean(values):.3f}", f"{np.mean(gaps):+.3f} ({min(gaps):+.3f} to {max(gaps):+.3f})"
                         if key != "oracle" else ""])
        rows.append(["auto on shuffled outcomes", f"{np.mean([x['auto_shuffled'] for x in runs]):.3f}",
                     f"range {min(x['auto_shuffled'] for x in runs):.3f}-{max(x['auto_shuffled'] for x in runs):.3f}"])
        chose: dict[str, int] = {}
        for x in runs:
            for k, v in x["auto_chose"].items():
                fam = k.split(" ")[0]
                chose[fam] = chose.get(fam, 0) + v
        out += [f"**{task.upper()}** ({metric}; oracle {oracle:.3f} on average):", ""]
        out += _table(["model", metric, "vs. oracle"], rows)
        out += ["", "`auto` chose, over all outer folds and seeds: "
                + ", ".join(f"{k} {v}" for k, v in sorted(chose.items(), key=lambda kv: -kv[1])) + ".", ""]
    return "\n".join(out).rstrip()


def prognosis_deep() -> str:
    """The deep model beside radiomics, clinical-only and the ablations, both tasks (benchmarks/prognosis_deep.py)."""
    r = _load("prognosis_deep")
    rfs, hpv = r["tasks"]["rfs"], r["tasks"]["hpv"]
    by_model = {row["model"]: row for row in hpv["rows"]}

    def cell(row: dict | None) -> str:
        if row is None:
            return ""
        return f"{row['score']:.3f} ({row['ci95'][0]:.3f}-{row['ci95'][1]:.3f})"

    rows = []
    for row in rfs["rows"]:
        h = by_model.get(row["model"]) or next((x for x in hpv["rows"] if x["model"].split(" (")[0]
                                                == row["model"].split(" (")[0]), None)
        rows.append([row["model"], cell(row), cell(h), f"{h['auc']:.3f}" if h else "",
                     f"{row['seconds_per_fit']:.1f} / {h['seconds_per_fit']:.1f}" if h else ""])
    rows.append(["oracle (the planted truth)", f"{rfs['oracle']:.3f}", f"{hpv['oracle']:.3f}", "", ""])
    head = (f"{r['machine']}, {r['date']}; {r['patients']} patients, {r['masks']} masks, 5 centre-stratified folds x "
            f"{r['repeats']}; mean of the fold metrics (95% bootstrap interval of the pooled out-of-fold predictions):")
    return "\n".join([head, ""] + _table(
        ["model", f"RFS C-index ({rfs['n_patients']} patients, {rfs['n_events']} relapses)",
         f"HPV balanced accuracy ({hpv['n_patients']}, {hpv['n_positive']} positive)", "HPV AUC",
         "seconds per fit (rfs / hpv)"], rows))


def _augmentation_rows(run: dict) -> list[list[object]]:
    stock = next(x for x in run["results"] if x["trainer"] == "nnUNetTrainer")
    rows = []
    for x in run["results"]:
        if x is stock:
            rows.append([f"`{x['trainer']}` (stock)", f"{x['batches_per_cpu_s']:.2f}", "1.00x", ""])
            continue
        per_round = [a / b for a, b in zip(x["rounds_batches_per_cpu_s"], stock["rounds_batches_per_cpu_s"])]
        rows.append([f"`{x['trainer']}`", f"{x['batches_per_cpu_s']:.2f}", f"**{x['ratio_to_stock']:.3f}x**",
                     f"{min(per_round):.2f}-{max(per_round):.2f}"])
    return rows


def _augmentation(keys: list[str], title: str) -> str:
    runs = _load("augmentation")["runs"]
    out: list[str] = []
    for key in keys:
        run = runs[key]
        la = run["load_average_1min"]
        patch = "x".join(str(p) for p in run["patch_size"])
        draws = f" (fastest of {run['repeats']} draws each)" if run.get("repeats", 1) > 1 else ""
        out += [f"{title}: patch {patch}, batch {run['batch_size']}, {run['rounds']} rounds x "
                f"{run['batches']} batches{draws}, load average {min(la.values())}-{max(la.values())}:", ""]
        out += _table(["trainer", "batches per CPU second", "vs stock (median)", "rounds"], _augmentation_rows(run))
        out.append("")
    return "\n".join(out).rstrip()


def augmentation_tiny() -> str:
    return _augmentation(["tiny"], "`--size tiny`")


def augmentation_small() -> str:
    return _augmentation(["small"], "`--size small`")


def inference() -> str:
    r = _load("inference")
    rows = []
    for case, s in r["seconds_per_case"].items():
        rows.append([case, f"{s['total_s']:.1f} s", f"{s['nnunet_s']:.1f} s", f"{s['conversion_s']:.2f} s",
                     f"{s['restore_s']:.2f} s", f"{s['other_s']:.2f} s", f"**{100 * s['outside_nnunet_share']:.1f} %**"])
    la = r["load_average_1min"]
    return "\n".join(
        [f"`{r['trainer']}`, one fold, test-time mirroring {'on' if r['tta'] else 'off'}, {r['machine']}, medians "
         f"of {r['rounds']} rounds, load average {la['start']}-{la['end']}; target: at most "
         f"{100 * r['target_outside_share']:.0f} % outside nnU-Net:", ""]
        + _table(["case", "total", "nnU-Net (load, preprocess, sliding window, export)", "conversion",
                  "restore + post-processing", "checks", "outside nnU-Net"], rows))


def demo_design() -> str:
    r = _load("demo_design")
    rows = []
    for x in r["results"]:
        p, n = x["pseudo_dice_last5_epochs"]
        rows.append([f"`{x['design']}`", r["designs"].get(x["design"], ""),
                     _f(x["gtvp_pseudo_dice_gt_0.5_after_iterations"], "{}"),
                     _f(x["gtvn_pseudo_dice_gt_0.3_after_iterations"], "{}"), f"{p:.2f} / {n:.2f}"])
    return "\n".join([f"{r['gpu']}, {r['date']}; data: {r['data']}; {r['schedule']}.", ""]
                     + _table(["design", "what", "GTVp pseudo Dice > 0.5 after (iterations)",
                               "GTVn pseudo Dice > 0.3 after", "pseudo Dice GTVp / GTVn, last 5 epochs"], rows))


GPU_NOT_RUN = ("**Not run yet.** The first GPU session (an H200, 15 minutes) was spent finding the CPU demo\n"
               "model's design (see [the demo model](explanation/demo_model.md)); in the second (2026-11-28) the\n"
               "machine refused new loans before the check could start. The GPU check (`benchmarks/gpu/`) has\n"
               "only run as its CPU dry run. Run `make gpu-check` on a CUDA machine and commit the JSON and this\n"
               "block.")


def gpu_check() -> str:
    """The GPU check's block (``benchmarks/gpu/report.py``) from ``benchmarks/results/gpu_check.json``."""
    path = RESULTS / "gpu_check.json"
    if not path.exists():
        return GPU_NOT_RUN
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.gpu.report import markdown

    return markdown(json.loads(path.read_text())).rstrip()


TABLES: dict[str, Callable[[], str]] = {
    "trainers": trainers, "convert": convert, "evaluate": evaluate, "radiomics": radiomics,
    "prognosis_training": prognosis_training, "prognosis_models": prognosis_models, "prognosis_deep": prognosis_deep,
    "augmentation_tiny": augmentation_tiny,
    "augmentation_small": augmentation_small,
    "inference": inference, "demo_design": demo_design, "gpu_check": gpu_check,
}


# -- files ----------------------------------------------------------------------------------------
def doc_files(docs: Path = DOCS) -> list[Path]:
    return sorted(docs.rglob("*.md"))


def render(text: str, tables: dict[str, str]) -> str:
    """``text`` with every known table block replaced by its generated content."""
    def fill(m: re.Match) -> str:
        name = m["name"]
        if name not in tables:
            return m[0]
        return f"{begin_marker(name)}\n{tables[name].rstrip()}\n{end_marker(name)}"

    return BLOCK.sub(fill, text)


def update(docs: Path = DOCS, check: bool = False) -> list[str]:
    """Rewrite (or with ``check``, only compare) every generated table; return the problems found.

    Problems: a stale table (``file: name``), a block naming no known table, a known table placed nowhere.
    """
    tables = {name: make() for name, make in TABLES.items()}
    problems, placed = [], set()
    for path in doc_files(docs):
        text = path.read_text()
        rel = path.relative_to(docs.parent)
        for m in BLOCK.finditer(text):
            name = m["name"]
            placed.add(name)
            if name not in tables:
                problems.append(f"{rel}: unknown table {name!r}")
            elif check and m["body"].rstrip("\n") != tables[name].rstrip():
                problems.append(f"{rel}: table {name!r} is stale")
        if not check:
            from hecktor_nnunet.io.atomic_io import write_text

            new = render(text, tables)
            if new != text:
                write_text(new, path)
    problems += [f"table {name!r} is placed in no file under {docs.name}/" for name in tables if name not in placed]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 naming every stale table")
    ap.add_argument("--docs", default=str(DOCS), help="documentation folder (default: docs/)")
    a = ap.parse_args(argv)
    problems = update(Path(a.docs), check=a.check)
    for p in problems:
        print(p, file=sys.stderr)
    if problems and a.check:
        print("run: python benchmarks/tables.py", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
