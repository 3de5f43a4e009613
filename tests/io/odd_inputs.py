"""Odd inputs, generated (reproducible, no binary blobs): what the centres and spreadsheets produce.

Each generator takes a canonical table or image and returns (or writes) the same content stored
the odd way; the tests check that the odd form reads or converts as the canonical one does, or
gets the named warning or error.

Tables
    :func:`write_table_as` (comma, semicolon, semicolon with decimal commas, tab, UTF-8 BOM),
    :func:`spell_outcomes` (``positive``/``Negative``/``unknown``, ``yes``/``no``...),
    :func:`odd_ids` (``chum-001``, `` CHUM_001 ``).
Images
    :func:`ras_stored` (x and y stored reversed: direction cosines -1, as RAS-minded writers do),
    :func:`pet_cut` (a PET with a smaller axial field of view than the CT),
    :func:`on_grid_of` (a label map on the PET grid), :func:`as_float` (a float label of exact
    integers), :func:`padded_outside_circle` (a CT in HU whose corners hold -3024, outside the
    reconstructed circle), :func:`uint8_clipped` and :func:`without_intercept` (CTs that are not in HU).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

#: style -> keyword arguments of DataFrame.to_csv (and the file encoding)
TABLE_STYLES = {
    "comma": {"sep": ","},
    "semicolon": {"sep": ";"},
    "semicolon_decimal_comma": {"sep": ";", "decimal": ","},
    "tab": {"sep": "\t"},
    "bom": {"sep": ",", "encoding": "utf-8-sig"},
}
POSITIVE = ("positive", "POS", "+", "yes", "True", "1")
NEGATIVE = ("Negative", "neg", "-", "No", "false", "0")
MISSING = ("unknown", "NA", "")


def write_table_as(df: pd.DataFrame, path: Path, style: str) -> Path:
    """Write a table in one of :data:`TABLE_STYLES`."""
    df.to_csv(path, index=False, **TABLE_STYLES[style])
    return path


def spell_outcomes(df: pd.DataFrame, columns: tuple[str, ...] = ("HPV Status", "Relapse")) -> pd.DataFrame:
    """The table with its 0/1 columns spelled out, each spelling of :data:`POSITIVE`/:data:`NEGATIVE`/:data:`MISSING`
    used in turn."""
    out = df.copy()
    for col in columns:
        spellings = {1: itertools.cycle(POSITIVE), 0: itertools.cycle(NEGATIVE), None: itertools.cycle(MISSING)}
        out[col] = [next(spellings[None if pd.isna(v) else int(v)]) for v in df[col]]
    return out


def odd_ids(ids: pd.Series) -> pd.Series:
    """Ids as people type them: lower-case, underscores, surrounding spaces, in turn."""
    forms = itertools.cycle((str.lower, lambda s: s.replace("-", "_"), lambda s: f" {s.lower().replace('-', '_')} "))
    return pd.Series([f(i) for f, i in zip(forms, ids)], index=ids.index)


def ras_stored(image: sitk.Image) -> sitk.Image:
    """The same physical image with x and y stored reversed (direction cosines -1 on those axes)."""
    arr = sitk.GetArrayFromImage(image)[:, ::-1, ::-1]
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    out.SetSpacing(image.GetSpacing())
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    last = np.asarray(image.GetSize()) - 1
    out.SetOrigin(image.TransformIndexToPhysicalPoint([int(last[0]), int(last[1]), 0]))
    out.SetDirection(tuple((d @ np.diag([-1.0, -1.0, 1.0])).ravel()))
    return out


def pet_cut(pet: sitk.Image, z_lo_mm: float, z_hi_mm: float) -> sitk.Image:
    """The PET slices whose centres lie between ``z_lo_mm`` and ``z_hi_mm`` (physical z, identity direction)."""
    z = pet.GetOrigin()[2] + pet.GetSpacing()[2] * np.arange(pet.GetSize()[2])
    keep = np.flatnonzero((z >= z_lo_mm) & (z <= z_hi_mm))
    size = list(pet.GetSize())
    size[2] = len(keep)
    return sitk.RegionOfInterest(pet, size, [0, 0, int(keep[0])])


def on_grid_of(label: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """A label map resampled (nearest neighbour) onto another image's grid."""
    return sitk.Resample(label, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def as_float(label: sitk.Image) -> sitk.Image:
    """A label map stored as float32 (values exactly 0.0, 1.0, 2.0)."""
    return sitk.Cast(label, sitk.sitkFloat32)


def padded_outside_circle(ct: sitk.Image, value: int = -3024) -> sitk.Image:
    """A CT whose voxels outside the in-plane inscribed circle hold ``value`` (scanner padding)."""
    arr = sitk.GetArrayFromImage(ct)
    ny, nx = arr.shape[1:]
    y, x = np.ogrid[:ny, :nx]
    arr[:, ((x - (nx - 1) / 2) / (nx / 2)) ** 2 + ((y - (ny - 1) / 2) / (ny / 2)) ** 2 > 1] = value
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(ct)
    return out


def uint8_clipped(ct: sitk.Image) -> sitk.Image:
    """A CT clipped to 0-255 and stored as uint8 (air and fat become 0)."""
    return sitk.Cast(sitk.Clamp(ct, sitk.sitkInt16, 0, 255), sitk.sitkUInt8)


def without_intercept(ct: sitk.Image) -> sitk.Image:
    """A CT stored as HU + 1024 in uint16, its rescale intercept lost."""
    return sitk.Cast(sitk.Cast(ct, sitk.sitkInt32) + 1024, sitk.sitkUInt16)


def write_flat_case(case, out: Path, **images: sitk.Image) -> Path:
    """One case of a release as a flat release folder; ``ct``, ``pet`` or ``label`` images replace its files."""
    out.mkdir(parents=True)
    pid = case.patient_id
    for key, src, name in (("ct", case.ct, f"{pid}__CT.nii.gz"), ("pet", case.pet, f"{pid}__PT.nii.gz"),
                           ("label", case.label, f"{pid}.nii.gz")):
        if key in images:
            sitk.WriteImage(images[key], str(out / name))
        elif src is not None:
            shutil.copy(src, out / name)
    return out
