"""HECKTOR trainers, sampling axis (parts in hecktor_nnunet.training.sampling)."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer


class nnUNetTrainerHecktorNodeSampling(HecktorTrainer):
    axis = "sampling"
    what = "{lymph_node_share:.0%} of training patches centred on GTVn voxels"
    why = "small nodes are rarely a patch centre with nnU-Net's any-foreground oversampling"
    lymph_node_share = 0.33
