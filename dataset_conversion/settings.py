"""Conversion settings: every choice that shapes the converted dataset, recorded in its manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

CROP_MODES = ("none", "overlap", "headneck")
PET_NORMS = {"zscore": "zscore", "none": "noNorm"}  # --pet-norm -> nnU-Net channel name
IMAGE_INTERPOLATORS = ("linear", "bspline")


@dataclass(frozen=True)
class ConversionSettings:
    """How a release becomes an nnU-Net dataset (and how predictions go back).

    Parameters
    ----------
    spacing : tuple of 3 floats or None
        Target spacing (mm, x y z). None keeps each patient's CT grid (exact, lossless crop).
    crop : {"none", "overlap", "headneck"}
        ``overlap`` keeps the CT∩PET field of view; ``headneck`` a fixed box of ``crop_size_mm``
        placed from the PET brain uptake and the body outline, enlarged to keep every label voxel.
    crop_size_mm : tuple of 3 floats
        Head-and-neck box size (x y z, mm); winners used 200 x 200 x 310.
    interpolator : {"linear", "bspline"}
        Image interpolator (labels always nearest neighbour).
    pet_norm : {"zscore", "none"}
        nnU-Net normalisation of the PET channel (CT always gets nnU-Net's CT normalisation).
    regions : bool
        Region-based labels GTVp, GTVn and GTV (union) instead of plain labels.
    extra_channels : tuple of str
        Further channels from ``Case.extras`` (e.g. ``("RTDOSE",)``), resampled like PET.
    brain_suv : float
        PET threshold (SUV) marking brain uptake for the ``headneck`` crop.
    """

    spacing: tuple[float, float, float] | None = None
    crop: str = "overlap"
    crop_size_mm: tuple[float, float, float] = (200.0, 200.0, 310.0)
    interpolator: str = "linear"
    pet_norm: str = "zscore"
    regions: bool = False
    extra_channels: tuple[str, ...] = ()
    brain_suv: float = 3.0
    format_version: int = field(default=1)

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {self.crop!r}")
        if self.pet_norm not in PET_NORMS:
            raise ValueError(f"pet_norm must be one of {sorted(PET_NORMS)}, got {self.pet_norm!r}")
        if self.interpolator not in IMAGE_INTERPOLATORS:
            raise ValueError(f"interpolator must be one of {IMAGE_INTERPOLATORS}, got {self.interpolator!r}")
        if self.spacing is not None:
            sp = tuple(float(s) for s in self.spacing)
            if len(sp) != 3 or min(sp) <= 0:
                raise ValueError(f"spacing must be three positive numbers (mm), got {self.spacing}")
            object.__setattr__(self, "spacing", sp)
        object.__setattr__(self, "crop_size_mm", tuple(float(s) for s in self.crop_size_mm))
        object.__setattr__(self, "extra_channels", tuple(self.extra_channels))

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel order in the dataset: ``_0000`` CT, ``_0001`` PET, then extras."""
        return ("CT", "PET") + self.extra_channels

    def channel_names(self) -> dict[str, str]:
        """dataset.json ``channel_names``: the value picks nnU-Net's normalisation scheme.

        CT gets ``"CT"`` (global foreground percentile clipping + z-score); PET gets ``"zscore"``
        (per case) or ``"noNorm"`` (SUV kept as is); extras get ``"zscore"``.
        """
        names = {"0": "CT", "1": PET_NORMS[self.pet_norm]}
        for i, _ in enumerate(self.extra_channels, start=2):
            names[str(i)] = "zscore"
        return names

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ConversionSettings":
        d = dict(d)
        for key in ("spacing", "crop_size_mm", "extra_channels"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def digest(self) -> str:
        """Short hash of the settings (a resumed run must use identical settings)."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
