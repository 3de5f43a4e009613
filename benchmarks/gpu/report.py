"""The GPU check's results file as the markdown block of ``docs/benchmarks.md``.

``python benchmarks/tables.py`` writes the block (its ``gpu_check`` table) from
``benchmarks/results/gpu_check.json`` with :func:`markdown`; ``python -m benchmarks.gpu`` prints it.
"""

from __future__ import annotations


def markdown(r: dict) -> str:
    """The docs/benchmarks.md block of a results file (parts not run are left out)."""
    f3 = "{:.3f}".format
    lines = [f"`python -m benchmarks.gpu` on **{r['gpu']}** ({r['date']}, Python {r['python']}, torch {r['torch']}, "
             f"{r['cpus']} CPU cores); {r['seconds']['total']:.0f} s in all.", ""]
    if r.get("tiny"):
        lines += ["Dry run (`--tiny`): few iterations, HECKTOR trainers narrowed by tiny mode while stock keeps its "
                  "network, so no figure below measures anything; it only shows that every part runs.", ""]
    ln = r.get("learning")
    if ln:
        lines += [f"Learning: fold 0 of the {ln['patients']}-patient tiny synthetic release (demo grid), "
                  f"{ln['iterations']} iterations each (`{ln['length']}` epochs x iterations x validation iterations), "
                  f"{len(ln['held_out_patients'])} held-out patients, `hecktor-evaluate` on the original CT grids.", "",
                  "| trainer | GTVp Dice | GTVn DSCagg | GTVn F1agg |", "|---|---|---|---|"]
        for name, m in ln["trainers"].items():
            lines.append(f"| `{name}` | {f3(m['gtvp_dice_mean'])} | {f3(m['gtvn_dsc_agg'])} | {f3(m['gtvn_f1_agg'])} |")
        lines += ["", "Pass marks: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in ln["pass"].items()), ""]
    inf = r.get("inference")
    if inf:
        lines += [f"Inference (`hecktor-predict` work on one {inf['case']} synthetic case, `{inf['trainer']}`; "
                  f"{inf['measured']}; challenge limit {inf['challenge_limits']['gpu']}, "
                  f"{inf['challenge_limits']['seconds_per_case']} s):",
                  "", "| folds | TTA | seconds | of which nnU-Net | peak GPU GiB |", "|---|---|---|---|---|"]
        for x in inf["results"]:
            peak = "" if x["peak_gpu_gib"] is None else f"{x['peak_gpu_gib']:.1f}"
            lines.append(f"| {x['folds']} | {'on' if x['tta'] else 'off'} | {x['seconds']:.1f} | "
                         f"{x['nnunet_seconds']:.1f} | {peak} |")
        lines.append("")
    st = r.get("step_time")
    if st:
        lines += [f"Step time ({st['dataset']} dataset, {st['warmup']} warm-up + {st['iters']} timed iterations, "
                  f"{st['da_workers']} DA workers, each trainer in its own process; target <= {st['target_ratio']}x):",
                  "", "| trainer | compile | s/iteration | x stock | peak GiB | network |", "|---|---|---|---|---|---|"]
        for x in st["results"]:
            peak = "" if x["peak_gib"] is None else f"{x['peak_gib']:.1f}"
            ratio = "" if x["ratio_to_stock"] is None else f"{x['ratio_to_stock']:.2f}"
            lines.append(f"| `{x['trainer']}` | {'on' if x['compile'] else 'off'} | {f3(x['s_per_iter'])} | "
                         f"{ratio} | {peak} | {x['network']} |")
        if st.get("skipped"):
            lines += ["", "Not timed (the run's `--budget-s` was spent): " + ", ".join(
                f"`{x['trainer']}`" + (" (compiled)" if x["compile"] else "") for x in st["skipped"]) + "."]
    return "\n".join(lines).rstrip() + "\n"
