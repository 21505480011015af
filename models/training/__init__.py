"""Fine-tuning, distillation, calibration, evaluation and export of the classifier."""
