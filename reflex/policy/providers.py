"""ONNX Runtime execution-provider selection: TensorRT -> CUDA -> CPU, or exactly what was asked."""

from __future__ import annotations

PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


class ProviderError(RuntimeError):
    """A requested provider is not available and strict mode is on."""


def canonical(name: str) -> str:
    return ALIASES.get(name.lower(), name)


def choose_providers(available: list[str], requested: list[str] | None, strict: bool) -> list[str]:
    """The providers to ask ONNX Runtime for, best first.

    With no request, every preferred provider that is installed, ending in CPU. With a request,
    the requested ones in order; missing ones are dropped, or fail in strict mode.
    """
    if not requested:
        chosen = [p for p in PREFERENCE if p in available]
        return chosen or ["CPUExecutionProvider"]
    wanted = [canonical(p) for p in requested]
    missing = [p for p in wanted if p not in available]
    if missing and strict:
        raise ProviderError(
            f"requested provider(s) {missing} not available; installed: {sorted(available)}"
        )
    chosen = [p for p in wanted if p in available]
    if not chosen:
        raise ProviderError(f"none of the requested providers {wanted} is available")
    return chosen
