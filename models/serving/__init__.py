"""Loading a model and scoring headlines: torch artefacts, ONNX bundles, batching."""
