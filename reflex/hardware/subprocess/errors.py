"""Errors of the subprocess connector. Every one names the command, the hook, the step and the
problem, and carries the tail of the command's stderr, so the operator can fix the script."""

from __future__ import annotations


class ContractViolation(ValueError):
    """A message broke the connector contract (bad JSON, wrong keys, wrong dimension, ...)."""


class NonFiniteNumber(ContractViolation):
    """Well-formed JSON except for a NaN/Infinity token: the framing is intact."""


class ConnectorError(RuntimeError):
    """A connector hook failed. The runner safe-stops on it."""

    def __init__(
        self,
        field: str,
        command: str,
        hook: str,
        step: int | None,
        problem: str,
        stderr_tail: str = "",
    ) -> None:
        self.field = field
        self.command = command
        self.hook = hook
        self.step = step
        self.problem = problem
        self.stderr_tail = stderr_tail
        where = "before the control loop" if step is None else f"step {step}"
        message = f"{field} `{command}` (hook '{hook}', {where}): {problem}"
        if stderr_tail:
            message += f" | stderr tail: {stderr_tail}"
        super().__init__(message)


def tail(text: str | bytes, max_lines: int = 8, max_chars: int = 800) -> str:
    """The last lines of a stream, on one line, for an error message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    joined = " / ".join(lines[-max_lines:])
    return joined if len(joined) <= max_chars else "..." + joined[-max_chars:]


def excerpt(data: bytes | str, limit: int = 120) -> str:
    """A short, printable quote of what a command wrote."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
