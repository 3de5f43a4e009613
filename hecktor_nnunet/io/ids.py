"""Patient ids and the file names that carry them: one normalisation for every tool.

``CHUM_001``, ``chum-001`` and `` CHUM-001 `` are one patient (``CHUM-001``): surrounding spaces
dropped, the centre prefix upper-cased, ``_`` between prefix and number read as ``-``. Every
command that joins tables or files by patient (convert, evaluate, radiomics, prognosis) compares
ids only after :func:`normalise_id`. A file ``<ID>__<KEY>.<suffix>`` is patient ``<ID>``'s ``KEY``
image (``CT``, ``PT``, ``RTDOSE``...), and ``<ID>.<suffix>`` its label map.
"""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd")
_ID_RE = re.compile(r"^([A-Za-z]+)[-_](\w+?)$")


def is_image_file(path: Path) -> bool:
    """A visible file with an image suffix (``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``)."""
    return path.is_file() and path.name.endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def normalise_id(raw: str) -> str:
    """``CHUM_001``, ``chum-001``, `` CHUM-001 `` -> ``CHUM-001``; anything else is returned stripped.

    The centre prefix (letters) is upper-cased and joined to the rest by ``-``; what follows the
    separator is kept as written.
    """
    raw = raw.strip()
    m = _ID_RE.match(raw)
    return f"{m.group(1).upper()}-{m.group(2)}" if m else raw


def centre_of(patient_id: str) -> str:
    """The centre code of a patient id (its prefix before ``-``)."""
    return patient_id.split("-")[0] if "-" in patient_id else patient_id.split("_")[0]


def split_image_name(path: Path) -> tuple[str, str | None]:
    """``CHUM-001__CT.nii.gz`` -> (``CHUM-001``, ``CT``); ``CHUM-001.nii.gz`` -> (``CHUM-001``, None).

    A name without an image suffix gives (``""``, None).
    """
    name = Path(path).name
    for suf in IMAGE_SUFFIXES:
        if name.endswith(suf):
            name = name[: -len(suf)]
            break
    else:
        return "", None
    if "__" in name:
        pid, key = name.rsplit("__", 1)
        return normalise_id(pid), key
    return normalise_id(name), None
