"""Native crashes reported as one line: the command runs in a forked child that a parent watches.

A fault inside llama.cpp (SIGILL on an instruction the CPU lacks, SIGSEGV, SIGBUS on a model
file that shrank under its mapping) kills the process before Python can say anything. The
parent forks before any model is loaded, waits, and when the child dies of such a signal prints
what it was doing (the child leaves a note in shared memory: loading which model, with which
kernels) and the next step, with its own exit code. Everything else (exit codes, Ctrl-C, a
closed pipe) passes through unchanged.
"""

from __future__ import annotations

import faulthandler
import mmap
import os
import signal
import sys

from llmcli.errors import ExitCode

_NOTE_SIZE = 1024
_note: dict[str, mmap.mmap] = {}

_CRASHES = {
    signal.SIGILL: "illegal instruction",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "arithmetic fault",
    signal.SIGABRT: "aborted",
}
_WATCHED = {signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}
_SI_KERNEL = 0x80  # si_code of a signal the kernel sent, e.g. the terminal's Ctrl-C to its process group


def note(text: str) -> None:
    """Say what the process is doing now, for the report if it dies of a signal (a no-op unwatched)."""
    if page := _note.get("page"):
        data = text.encode("utf-8", errors="replace")[: _NOTE_SIZE - 1]
        page.seek(0)
        page.write(data + b"\0" * (_NOTE_SIZE - len(data)))


def _read_note(page: mmap.mmap) -> str:
    return page[:_NOTE_SIZE].split(b"\0", 1)[0].decode("utf-8", errors="replace")


def crash_message(sig: int, doing: str) -> str:
    """The one line, hint included, for a child killed by sig while doing `doing`."""
    name = signal.Signals(sig).name
    what = _CRASHES.get(signal.Signals(sig), "killed")
    where = f" while {doing}" if doing else ""
    if sig == signal.SIGILL:
        hint = (
            "this llama.cpp build uses an instruction the CPU cannot run; see `llmcli info`, try "
            'LLMCLI_AMX=off, or rebuild it for this CPU: CMAKE_ARGS="-DGGML_NATIVE=off" '
            "pip install --force-reinstall --no-cache-dir llama-cpp-python"
        )
    elif sig == signal.SIGBUS:
        hint = "the model file may have changed or shrunk while in use; check it with `llmcli models show`"
    elif sig == signal.SIGKILL:
        hint = "the system may have run out of memory: try a smaller --ctx or model"
    else:
        hint = "the model file may be damaged (`llmcli models show` checks it); --verbose shows its log"
    return f"error: llama.cpp crashed ({name}, {what}){where} ({hint})"


def supervise() -> None:
    """Fork: the child returns and runs the command; this process waits and exits with the child's
    code, or with ExitCode.CRASHED and one line when a native fault killed it.

    A no-op where signals cannot be waited for with their origin (sigwaitinfo: Linux and most Unix
    but macOS), which the parent needs to pass on a `kill -INT` without doubling a Ctrl-C.
    """
    if not hasattr(os, "fork") or not hasattr(signal, "sigwaitinfo"):
        return
    page = mmap.mmap(-1, _NOTE_SIZE)  # anonymous and shared: the child's notes are visible here
    sys.stdout.flush()
    sys.stderr.flush()
    # Blocked before the fork, so a child that ends at once still leaves its SIGCHLD pending.
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    pid = os.fork()
    if pid == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WATCHED)
        _note["page"] = page
        faulthandler.disable()  # PYTHONFAULTHANDLER's dump is not for users: the parent reports
        return
    sys.exit(_watch(pid, page))


def _watch(pid: int, page: mmap.mmap) -> int:
    """Wait for the child, passing on the signals sent to this process alone; the terminal's own
    (Ctrl-C, Ctrl-\\, hang-up) already reach the child, which shares the process group."""
    while True:
        info = signal.sigwaitinfo(_WATCHED)
        if info.si_signo == signal.SIGCHLD:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        elif info.si_code != _SI_KERNEL:
            os.kill(pid, info.si_signo)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = os.WTERMSIG(status)
    if sig in _CRASHES or sig == signal.SIGKILL:
        sys.stderr.write(crash_message(sig, _read_note(page)) + "\n")
        return ExitCode.CRASHED
    return 128 + sig  # SIGINT, SIGPIPE, SIGTERM: the user's or the shell's doing, said by the code
