"""The error tree: every failure a user can cause maps to one exit code and one line with a hint."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit status llmcli uses."""

    OK = 0
    ERROR = 1  # a generic failure, or some files of a batch failed
    USAGE = 2  # bad flag values or empty input (Click uses 2 for its own usage errors too)
    MODEL_NOT_FOUND = 3
    MODEL_INVALID = 4
    CONTEXT_OVERFLOW = 5
    NETWORK = 6
    STORAGE = 7
    CRASHED = 8  # llama.cpp died of a signal (SIGILL, SIGSEGV, SIGBUS, ...)
    INTERRUPTED = 130  # 128 + SIGINT
    BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away


class LlmcliError(Exception):
    """Base of all errors shown to the user as one line plus an optional hint."""

    exit_code: ExitCode = ExitCode.ERROR
    stops_batch = False  # True: every later input would fail the same way, so a batch stops here

    def __init_subclass__(cls, exit_code: ExitCode | None = None, **kwargs: object) -> None:
        """`class E(LlmcliError, exit_code=ExitCode.X)` gives E (and its subclasses) that exit status."""
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LlmcliError, exit_code=ExitCode.USAGE):
    """Invalid option values or missing input."""


class ModelNotFoundError(LlmcliError, exit_code=ExitCode.MODEL_NOT_FOUND):
    """The model reference points at nothing."""


class ModelFormatError(LlmcliError, exit_code=ExitCode.MODEL_INVALID):
    """The file is not a GGUF, or a truncated/corrupt one."""


class ModelLoadError(LlmcliError, exit_code=ExitCode.MODEL_INVALID):
    """llama.cpp refused the model or could not create a context."""


class ContextOverflowError(LlmcliError, exit_code=ExitCode.CONTEXT_OVERFLOW):
    """The input does not fit the context window."""


class OutputClosed(LlmcliError, exit_code=ExitCode.BROKEN_PIPE):
    """The reader of stdout went away (`| head`): stop quietly."""

    def __init__(self) -> None:
        super().__init__("standard output was closed")


class NetworkError(LlmcliError, exit_code=ExitCode.NETWORK):
    """The hub (or a server) cannot be reached, or a download failed or arrived corrupt."""


class BackendError(NetworkError):
    """The inference server cannot be reached, refuses the key, or broke off an answer."""

    stops_batch = True


class StorageError(LlmcliError, exit_code=ExitCode.STORAGE):
    """Disk full, or a folder we must write is not writable."""


class GenerationError(LlmcliError):
    """llama.cpp failed while evaluating tokens."""
