"""nnU-Net's door to the HECKTOR trainers: every advertised trainer class, bound here under its name.

nnU-Net imports the modules of the folders in ``nnUNet_extTrainer`` by their bare names, looks the
``-tr`` name up on them, and drops those modules again after the lookup. A class defined in this folder
would therefore exist once per lookup and once more for ``import hecktor_nnunet.trainers...``; the
classes are defined in :mod:`hecktor_nnunet.training.variants` instead, and this module only binds the
advertised ones (:func:`~hecktor_nnunet.training.registry.trainer_classes`), so every lookup and every
import gives the same class object.
"""

from hecktor_nnunet.training.registry import trainer_classes

globals().update({cls.__name__: cls for cls in trainer_classes()})
