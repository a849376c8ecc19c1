"""The two parameter-regression baselines of the PRNet paper's comparison (docs/conventions.md
section 9).

* 3DDFA-style: MobileNet-V1 on a 120x120 crop -> 62 numbers (3x4 camera, 40 shape and 10
  expression coefficients), whitened; WPDC then VDC loss.
* DeFA-style: a small CNN on a 128x128 crop -> 236 numbers (2x4 weak-perspective camera, 199 shape
  and 29 expression coefficients), whitened; parameter loss plus a 68-landmark loss.

Both are trained on the PRN training file (model.baselines.train_baseline) and decoded through the
same morphable model to crop-space vertices and then to UV position maps
(model.baselines.params3dmm), so all three methods are evaluated by the same map decoding.

Modules: params3dmm (targets, whitening, decoding: ``decode_params_to_crop_vertices``,
``position_maps``), mobilenet, defa_net, losses, train_baseline (``train_baseline``,
``BaselineConfig``), predict (``predict_maps``, ``iter_predicted_maps``, ``BaselinePredictor``).
"""
