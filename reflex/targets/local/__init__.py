"""``target.kind: local``: run an export in this process with ONNX Runtime."""
