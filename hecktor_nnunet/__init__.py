"""hecktor-nnunet: HECKTOR PET/CT head-and-neck tooling around nnU-Net v2.

Sub-packages: ``dataset_conversion`` (release -> nnU-Net raw dataset and back), ``trainers``
(the folder ``nnUNet_extTrainer`` points at), ``training`` (losses, transforms, samplers the
trainers compose), ``metrics`` (challenge metrics), ``prognosis`` (radiomics and outcome models).
"""

__version__ = "0.1.0"
