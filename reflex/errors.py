"""Error types the CLI maps to documented exit codes (see docs/exit-codes.md)."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_SESSION_FAILED = 1  # the session ran but safe-stopped or recorded errors
EXIT_CONFIG = 2  # bad input: config file, flags, recording format; nothing was touched
EXIT_SETUP = 3  # target / hardware / camera could not be brought up; nothing moved
EXIT_SAFE_STOP_FAILED = 4  # a safe stop itself failed: check the robot
EXIT_ABORTED = 130  # Ctrl-C during connect, or a second Ctrl-C


MAX_PATH_CHARS = 160
MAX_MESSAGE_CHARS = 800


def clip(text: str, limit: int) -> str:
    """Cut a text taken from input (a key, a value) so a message never echoes a megabyte back."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 30]}... ({len(text)} characters)"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where (YAML path, line), what was expected, what came.
    Path and message are cut to a readable length: both can carry text from the file."""

    path: str
    message: str
    line: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", clip(self.path, MAX_PATH_CHARS))
        object.__setattr__(self, "message", clip(self.message, MAX_MESSAGE_CHARS))

    def __str__(self) -> str:
        where = self.path or "<root>"
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where}: {self.message}"


class ReflexError(Exception):
    exit_code = EXIT_SESSION_FAILED


class ConfigError(ReflexError):
    """Invalid input. Carries every problem found, each with its YAML path."""

    exit_code = EXIT_CONFIG

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"{source}: {len(issues)} problem(s)\n{lines}")


class SetupError(ReflexError):
    """A part could not be brought up (target unreachable, motor silent, camera mismatch)."""

    exit_code = EXIT_SETUP

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"{stage}: {message}")


class SessionAborted(ReflexError):
    """Ctrl-C during connect, before anything was powered."""

    exit_code = EXIT_ABORTED
