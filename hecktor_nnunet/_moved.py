"""The import paths of modules that moved when the package was grouped by pipeline stage.

Each old path still imports, with a ``FutureWarning`` naming the new one: the old module is a thin
stand-in whose attributes are looked up in the new modules, in the order listed. New code imports
the new paths. A finder placed first on ``sys.meta_path`` answers for exactly these names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

#: old module -> the modules that now hold its names (looked up in this order)
MOVED: dict[str, tuple[str, ...]] = {
    "hecktor_nnunet.release": ("hecktor_nnunet.io.release", "hecktor_nnunet.io.ids"),
    "hecktor_nnunet.clinical": ("hecktor_nnunet.io.clinical",),
    "hecktor_nnunet.checks": ("hecktor_nnunet.io.checks",),
    "hecktor_nnunet.geometry": ("hecktor_nnunet.io.geometry",),
    "hecktor_nnunet.atomic_io": ("hecktor_nnunet.io.atomic_io", "hecktor_nnunet.io.image_files"),
    "hecktor_nnunet.problems": ("hecktor_nnunet.io.problems",),
    "hecktor_nnunet.evaluate": ("hecktor_nnunet.evaluation", "hecktor_nnunet.io.label_maps"),
    "hecktor_nnunet.plots": ("hecktor_nnunet.evaluation.plots",),
    "hecktor_nnunet.predict": ("hecktor_nnunet.inference.predict",),
    "hecktor_nnunet.training.postprocessing": ("hecktor_nnunet.inference.postprocessing",),
    "hecktor_nnunet.report": ("hecktor_nnunet.reporting.collect", "hecktor_nnunet.reporting.figures",
                              "hecktor_nnunet.reporting.render", "hecktor_nnunet.reporting.inputs"),
    "hecktor_nnunet.synth": ("hecktor_nnunet.demo.synth", "hecktor_nnunet.demo.phantom"),
    "hecktor_nnunet.prognosis.simulate": ("hecktor_nnunet.demo.simulate",),
}
#: old ``module.name`` -> new ``module.name``, for names that changed as they moved
RENAMED: dict[str, str] = {
    "hecktor_nnunet.evaluate.find_predictions": "hecktor_nnunet.io.label_maps.find_label_maps",
    "hecktor_nnunet.report._fmt": "hecktor_nnunet.reporting.render.fmt",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and makes each a stand-in for its new modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return None  # the default: an empty module, filled by exec_module

    def exec_module(self, module: types.ModuleType) -> None:
        old, new = module.__name__, MOVED[module.__name__]
        warnings.warn(f"{old} has moved: import {' or '.join(new)} instead (the old path will be removed)",
                      FutureWarning, stacklevel=2)

        def __getattr__(name: str):
            if f"{old}.{name}" in RENAMED:
                module_name, _, attribute = RENAMED[f"{old}.{name}"].rpartition(".")
                return getattr(importlib.import_module(module_name), attribute)
            for target in new:
                found = importlib.import_module(target)
                if hasattr(found, name):
                    return getattr(found, name)
            raise AttributeError(f"module {old!r} (moved to {', '.join(new)}) has no attribute {name!r}")

        module.__getattr__ = __getattr__
        module.__doc__ = f"Moved to {', '.join(new)}."


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModules())
