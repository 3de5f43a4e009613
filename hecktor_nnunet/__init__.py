"""hecktor-nnunet: HECKTOR PET/CT head-and-neck tooling around nnU-Net v2.

Grouped by pipeline stage: ``io`` (release reader, clinical schema, patient ids, checks, geometry,
atomic writes), ``dataset_conversion`` (release -> nnU-Net raw dataset and back), ``training``
(losses, transforms, samplers, base trainer) and ``trainers`` (the folder ``nnUNet_extTrainer``
points at), ``inference`` (predict, post-processing), ``evaluation`` and ``metrics`` (challenge
metrics and the evaluate commands' logic), ``prognosis`` (radiomics and outcome models),
``reporting`` (collect, figures, the HTML template), ``demo`` (synthetic release, step runner) and
``cli`` (one thin module per command).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

# In the repository, three sub-packages live beside this folder (pyproject's package-dir installs
# them inside it). Python started in the repository root imports this folder rather than an
# installed copy, so this finder maps them to the checkout's folders; an installed copy has them
# inside and adds nothing.
_CHECKOUT = Path(__file__).resolve().parent.parent
_BESIDE = {f"{__name__}.{name}": _CHECKOUT / name for name in ("dataset_conversion", "trainers", "prognosis")}


class _CheckoutSubpackages(importlib.abc.MetaPathFinder):
    """Finds ``hecktor_nnunet.{dataset_conversion,trainers,prognosis}`` in a source checkout."""

    def find_spec(self, fullname, path=None, target=None):
        folder = _BESIDE.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


if (_CHECKOUT / "pyproject.toml").is_file() and all((f / "__init__.py").is_file() for f in _BESIDE.values()):
    sys.meta_path.append(_CheckoutSubpackages())

