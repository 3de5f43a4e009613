"""The report's figures: PET/CT overlays with truth and prediction contours, the learning curve.

Figures are PNG bytes keyed by name; the template embeds them as base64 data URIs.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from hecktor_nnunet.reporting.inputs import ReportError

#: Soft-tissue window of the CT in the overlays (level 40 HU, width 400 HU).
CT_WINDOW_HU = (-160.0, 240.0)
#: Contour colours (truth solid, prediction dashed).
LABEL_COLOURS = {1: ("GTVp", "#39ff14"), 2: ("GTVn", "#00bfff")}


def _array(image) -> tuple[np.ndarray, tuple[float, float, float]]:
    import SimpleITK as sitk

    image = sitk.DICOMOrient(image, "LPS")
    return sitk.GetArrayFromImage(image), tuple(image.GetSpacing())


def overlay_png(ct, pet, truth=None, pred=None, title: str = "") -> tuple[bytes, dict]:
    """Axial and coronal PET/CT slices with truth (solid) and prediction (dashed) contours.

    Parameters
    ----------
    ct : SimpleITK.Image
        CT in HU (shown in a soft-tissue window, :data:`CT_WINDOW_HU`).
    pet : SimpleITK.Image
        PET in SUV, on any grid sharing the CT's physical frame (resampled linearly onto the CT grid;
        shown with the ``hot`` colormap over the CT).
    truth, pred : SimpleITK.Image, optional
        Label maps (1 GTVp, 2 GTVn) on the CT grid.
    title : str
        Figure title.

    Returns
    -------
    bytes, dict
        The PNG and the slices shown (``axial_index``, ``coronal_index``: voxel indices in LPS order).
    """
    from hecktor_nnunet.io.geometry import Grid, resample

    ct_arr, spacing = _array(ct)
    pet_arr, _ = _array(resample(pet, Grid.of(ct), "linear", 0.0))
    labels = {name: _array(img)[0] for name, img in (("truth", truth), ("pred", pred)) if img is not None}
    for name, arr in labels.items():
        if arr.shape != ct_arr.shape:
            raise ReportError(f"{name} label map shape {arr.shape} differs from the CT {ct_arr.shape} (z, y, x)")
    z, y = _busiest_slices(ct_arr.shape, labels.values())
    return _draw_overlay(ct_arr, pet_arr, labels, spacing, z, y, title), {"axial_index": z, "coronal_index": y}


def _busiest_slices(shape: tuple[int, ...], labels) -> tuple[int, int]:
    """Axial and coronal indices with the most labelled voxels (of the first non-empty map), else the middle ones."""
    fg = next((a > 0 for a in labels if (a > 0).any()), None)
    if fg is None:
        return shape[0] // 2, shape[1] // 2
    return int(np.argmax(fg.sum(axis=(1, 2)))), int(np.argmax(fg.sum(axis=(0, 2))))


def _draw_overlay(ct_arr: np.ndarray, pet_arr: np.ndarray, labels: dict[str, np.ndarray],
                  spacing: tuple[float, float, float], z: int, y: int, title: str) -> bytes:
    """The two-panel PNG of :func:`overlay_png` (arrays z, y, x on the CT grid, ``spacing`` x, y, z in mm)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    sx, sy, sz = spacing
    positive = pet_arr[pet_arr > 0]
    vmax = max(2.5, float(np.percentile(positive, 99.5))) if positive.size else 2.5
    views = (("axial", lambda a: a[z], sy / sx, "upper"), ("coronal", lambda a: a[:, y, :], sz / sx, "lower"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    for ax, (name, cut, aspect, origin) in zip(axes, views):
        ax.imshow(cut(ct_arr), cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1], aspect=aspect,
                  origin=origin, interpolation="nearest")
        p = cut(pet_arr)
        im = ax.imshow(np.ma.masked_less(p, 0.15 * vmax), cmap="hot", vmin=0, vmax=vmax, alpha=0.6, aspect=aspect,
                       origin=origin, interpolation="bilinear")
        for source, style in (("truth", "solid"), ("pred", "dashed")):
            if source not in labels:
                continue
            sl = cut(labels[source])
            for value, (_, colour) in LABEL_COLOURS.items():
                if (sl == value).any():
                    ax.contour((sl == value).astype(float), levels=[0.5], colors=[colour], linestyles=style,
                               linewidths=1.4, origin=origin)
        ax.set_title(f"{name} (slice {z if name == 'axial' else y})", fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.7, label="SUV")
    handles = [Line2D([], [], color=c, ls=ls, label=f"{src} {n}") for src, ls in (("truth", "-"), ("prediction", "--"))
               for n, c in LABEL_COLOURS.values()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pick_patients(per_patient: Sequence[dict], available: Sequence[str], n: int) -> list[str]:
    """Best, median and worst GTVp Dice first (then the rest in id order), among ``available``."""
    ok = set(available)
    scored = sorted(((r["gtvp_dice"], r["patient_id"]) for r in per_patient
                     if r.get("patient_id") in ok and r.get("gtvp_dice") is not None
                     and math.isfinite(r["gtvp_dice"])), reverse=True)
    chosen: list[str] = []
    if scored:
        for i in (0, len(scored) // 2, len(scored) - 1):
            if scored[i][1] not in chosen:
                chosen.append(scored[i][1])
    chosen += [p for p in sorted(ok) if p not in chosen]
    return chosen[:n]


def overlay_section(release: Path, pred: Path | None, per_patient: Sequence[dict], n: int
                    ) -> tuple[list[dict], dict[str, bytes]]:
    """Overlays of ``n`` patients of the release (with their predictions when ``pred`` is given)."""
    import SimpleITK as sitk

    from hecktor_nnunet.io.label_maps import find_label_maps
    from hecktor_nnunet.io.release import read_release

    rel = read_release(release)
    cases = {c.patient_id: c for c in rel.cases if c.ct is not None and c.pet is not None}
    preds = find_label_maps(pred) if pred is not None else {}
    available = [p for p in cases if (p in preds if pred is not None else cases[p].label is not None)]
    entries, figures = [], {}
    for pid in _pick_patients(per_patient, available, n):
        case = cases[pid]
        truth = sitk.ReadImage(str(case.label)) if case.label else None
        prediction = sitk.ReadImage(str(preds[pid])) if pid in preds else None
        row = next((r for r in per_patient if r.get("patient_id") == pid), {})
        dice = row.get("gtvp_dice")
        title = pid + (f": GTVp Dice {dice:.3f}" if dice is not None and math.isfinite(dice) else "")
        png, where = overlay_png(sitk.ReadImage(str(case.ct)), sitk.ReadImage(str(case.pet)), truth, prediction,
                                 title)
        name = f"overlay_{pid}"
        figures[name] = png
        entries.append({"patient_id": pid, "figure": name, "gtvp_dice": dice, **where,
                        "ct": str(case.ct), "pet": str(case.pet), "truth": str(case.label) if case.label else None,
                        "prediction": str(preds[pid]) if pid in preds else None})
    return entries, figures


def learning_curve(progress_png: Path) -> dict[str, bytes]:
    """nnU-Net's ``progress.png`` (losses, pseudo Dice, learning rate) as the ``training_progress`` figure."""
    return {"training_progress": Path(progress_png).read_bytes()}
