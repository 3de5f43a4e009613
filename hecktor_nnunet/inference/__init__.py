"""From a trained model to label maps on each patient's original CT grid: ``hecktor-predict``.

``predict`` (check the model, convert the inputs with the training dataset's settings, run
nnU-Net's predictor, post-process, restore), ``postprocessing`` (the rules chosen on the
validation folds by ``hecktor-nnunet postprocess-select`` and applied at prediction),
``ensemble`` (several models' probabilities averaged before the argmax, as ``nnUNetv2_ensemble``),
``components`` (each restored mask's connected components, reported by ``hecktor-predict``),
``cv_masks`` (each training patient's mask from the fold that held it out: ``hecktor-nnunet cv-masks``).
"""
