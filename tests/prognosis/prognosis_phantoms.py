"""Hand-made PET/CT phantoms with known values (helpers of the prognosis tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

# Phantom: CT 40^3 voxels of 2 mm; PET 24^3 voxels of 4 mm on the same physical frame.
CT_SPACING, PET_SPACING = 2.0, 4.0
SPHERE_R_MM = 10.0     # GTVp sphere radius
SUV_IN, SUV_OUT = 5.0, 1.0
HU_IN = 50.0


def _image(arr: np.ndarray, spacing: float, origin: float) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((spacing,) * 3)
    img.SetOrigin((origin,) * 3)
    return img


def _centres(n: int, spacing: float, origin: float) -> tuple[np.ndarray, ...]:
    ax = origin + spacing * np.arange(n)
    return np.meshgrid(ax, ax, ax, indexing="ij")


def write_phantom(root: Path, pid: str, label_kind: str) -> None:
    """One patient in the flat layout plus ``masks/<pid>.nii.gz``.

    label_kind: "sphere" (GTVp sphere r=10 mm + a one-voxel GTVn), "empty" (no label).
    CT is HU_IN inside a 16 mm sphere, 0 HU elsewhere; PET is SUV_IN inside that sphere, SUV_OUT elsewhere.
    """
    z, y, x = _centres(40, CT_SPACING, -39.0)
    r_ct = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    ct = np.where(r_ct <= 16, HU_IN, 0.0).astype(np.int16)
    label = np.zeros(ct.shape, dtype=np.uint8)
    if label_kind == "sphere":
        label[r_ct <= SPHERE_R_MM] = 1
        label[20, 20, 33] = 2          # one voxel, 24 mm from the centre
    z, y, x = _centres(24, PET_SPACING, -46.0)
    r_pet = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    pet = np.where(r_pet <= 16, SUV_IN, SUV_OUT).astype(np.float32)
    (root / "release").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    sitk.WriteImage(_image(ct, CT_SPACING, -39.0), str(root / "release" / f"{pid}__CT.nii.gz"))
    sitk.WriteImage(_image(pet, PET_SPACING, -46.0), str(root / "release" / f"{pid}__PT.nii.gz"))
    sitk.WriteImage(_image(label, CT_SPACING, -39.0), str(root / "masks" / f"{pid}.nii.gz"))


def flip_xy(image: sitk.Image) -> sitk.Image:
    """The same physical image stored the other way along x and y (LPS <-> RAS): array flipped,
    direction columns x and y negated, origin moved to the opposite corner. Values untouched."""
    arr = sitk.GetArrayFromImage(image)[:, ::-1, ::-1]
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    out.SetSpacing(image.GetSpacing())
    nx, ny, _ = image.GetSize()
    out.SetOrigin(image.TransformIndexToPhysicalPoint((nx - 1, ny - 1, 0)))
    direction = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag([-1.0, -1.0, 1.0])
    out.SetDirection(direction.ravel().tolist())
    return out
