"""Making exports (``reflex export``) and checking them (``reflex validate``): docs/export-format.md."""


class ExportError(Exception):
    """The source cannot be exported as asked; the message names the file or field (exit 2)."""


class ParityError(Exception):
    """ONNX Runtime disagrees with the source framework beyond the threshold (exit 1)."""
