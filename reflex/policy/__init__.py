"""Running an exported policy (ONNX + ``reflex_config.json``) in this process."""
