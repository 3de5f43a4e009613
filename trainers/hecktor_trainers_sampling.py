"""HECKTOR trainers, sampling axis (parts in hecktor_nnunet.training.sampling)."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer


class nnUNetTrainerHecktorNodeSampling(HecktorTrainer):
    """A third of training patches centred on GTVn voxels, so small nodes are seen often."""

    lymph_node_share = 0.33
