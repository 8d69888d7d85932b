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

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LlmcliError):
    """Invalid option values or missing input."""

    exit_code = ExitCode.USAGE


class ModelNotFoundError(LlmcliError):
    """The model reference points at nothing."""

    exit_code = ExitCode.MODEL_NOT_FOUND


class ModelFormatError(LlmcliError):
    """The file is not a GGUF, or a truncated/corrupt one."""

    exit_code = ExitCode.MODEL_INVALID


class ModelLoadError(LlmcliError):
    """llama.cpp refused the model or could not create a context."""

    exit_code = ExitCode.MODEL_INVALID


class ContextOverflowError(LlmcliError):
    """The input does not fit the context window."""

    exit_code = ExitCode.CONTEXT_OVERFLOW


class OutputClosed(LlmcliError):
    """The reader of stdout went away (`| head`): stop quietly."""

    exit_code = ExitCode.BROKEN_PIPE

    def __init__(self) -> None:
        super().__init__("standard output was closed")


class NetworkError(LlmcliError):
    """The hub (or a server) cannot be reached, or a download failed or arrived corrupt."""

    exit_code = ExitCode.NETWORK


class BackendError(NetworkError):
    """The inference server cannot be reached, refuses the key, or broke off an answer."""

    stops_batch = True


class StorageError(LlmcliError):
    """Disk full, or a folder we must write is not writable."""

    exit_code = ExitCode.STORAGE


class GenerationError(LlmcliError):
    """llama.cpp failed while evaluating tokens."""
