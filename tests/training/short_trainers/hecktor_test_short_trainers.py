"""The demo trainer with a shorter schedule, for the learning test (this folder joins nnUNet_extTrainer there only)."""

from dataclasses import replace

from hecktor_nnunet.training.variants import nnUNetTrainerHecktorDemoCPU


class nnUNetTrainerHecktorDemoCPU_200its(nnUNetTrainerHecktorDemoCPU):
    training_schedule = replace(nnUNetTrainerHecktorDemoCPU.training_schedule, epochs=8)
