"""Connected components of restored label maps, and how many are below the radiomics "tiny" size.

``hecktor-predict`` counts, per patient and label (GTVp, GTVn), the connected components of each
mask it wrote on the original CT grid (the connectivity of :mod:`.postprocessing`, 26) and how
many of them are smaller than :data:`~hecktor_nnunet.prognosis.radiomics_settings.MIN_VOLUME_ML`,
the volume under which ``hecktor-radiomics`` flags a region ``tiny`` and gives it no radiomics.
The counts go to ``prediction_summary.json`` in the output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hecktor_nnunet.inference.postprocessing import CONNECTIVITY
from hecktor_nnunet.io.geometry import voxel_volume_ml
from hecktor_nnunet.metrics.segmentation import GTVN, GTVP, components
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.prognosis.radiomics_settings import MIN_VOLUME_ML

SUMMARY_FILE = "prediction_summary.json"
LABELS = {"GTVp": GTVP, "GTVn": GTVN}


def label_components(label: np.ndarray, voxel_ml: float, min_volume_ml: float = MIN_VOLUME_ML) -> dict[str, dict]:
    """Connected components of GTVp and GTVn in one label map.

    Parameters
    ----------
    label : ndarray of int, shape (z, y, x)
        Label map, 0 background, 1 GTVp, 2 GTVn.
    voxel_ml : float
        Volume of one voxel (mL).
    min_volume_ml : float
        Components strictly smaller than this (mL) are counted as small.

    Returns
    -------
    dict
        ``{"GTVp": {...}, "GTVn": {...}}``, each with ``components`` (count),
        ``below_min_volume`` (count) and ``volumes_ml`` (every component's volume, largest first).
    """
    label = np.asarray(label)
    boxes = ndimage.find_objects(label)  # bounding box of each label value: components are counted inside
    out = {}
    for name, value in LABELS.items():
        box = boxes[value - 1] if value <= len(boxes) else None
        if box is None:
            out[name] = {"components": 0, "below_min_volume": 0, "volumes_ml": []}
            continue
        lab, n = components(label[box] == value, CONNECTIVITY)
        volumes = np.sort(np.bincount(lab.ravel(), minlength=n + 1)[1:] * voxel_ml)[::-1]
        out[name] = {"components": n, "below_min_volume": int(np.count_nonzero(volumes < min_volume_ml)),
                     "volumes_ml": [round(float(v), 4) for v in volumes]}
    return out


def mask_components(item: tuple[str, Path]) -> tuple[str, dict]:
    """(patient id, its record) of one label-map file: the file name and :func:`label_components`."""
    pid, path = item
    image = sitk.ReadImage(str(path))
    return pid, {"file": Path(path).name,
                 **label_components(sitk.GetArrayViewFromImage(image), voxel_volume_ml(image))}


def component_report(masks: dict[str, Path], workers: int = 1, quiet: bool = False) -> dict[str, dict]:
    """:func:`mask_components` of every ``{patient id: label map}``, in ``workers`` processes.

    Returns
    -------
    dict
        Patient id -> its record, sorted by patient id.
    """
    found = dict(parallel_map(mask_components, sorted(masks.items()), workers, "counting components", quiet))
    return {pid: found[pid] for pid in sorted(found)}


def small_components(report: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """Per label: (patients with a component below the tiny size, how many such components)."""
    return {name: (sum(r[name]["below_min_volume"] > 0 for r in report.values()),
                   sum(r[name]["below_min_volume"] for r in report.values())) for name in LABELS}


def format_small_components(report: dict[str, dict], min_volume_ml: float = MIN_VOLUME_ML) -> list[str]:
    """One line per label with components below ``min_volume_ml``, or one line saying there are none."""
    lines = [f"{patients} patient(s) have {name} components below {min_volume_ml:g} mL ({n} component(s))"
             for name, (patients, n) in small_components(report).items() if n]
    return lines or [f"no GTVp or GTVn component below {min_volume_ml:g} mL"]


def read_prediction_summary(output_dir: str | Path) -> dict | None:
    """The ``prediction_summary.json`` of a ``hecktor-predict`` output folder; None when there is none."""
    path = Path(output_dir) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None
