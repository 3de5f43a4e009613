"""From a trained model to label maps on each patient's original CT grid: ``hecktor-predict``.

``predict`` (check the model, convert the inputs with the training dataset's settings, run
nnU-Net's predictor, post-process, restore), ``postprocessing`` (the rules chosen on the
validation folds by ``hecktor-nnunet postprocess-select`` and applied at prediction).
"""
