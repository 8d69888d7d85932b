"""The one module that imports llama_cpp: loading it (after the AMX guard), routing its log, and what the
build can do.

llama_cpp is imported on the first `llama()` call, never at import time, so that commands which do not
generate start fast. Its log goes through our callback: quiet unless verbose, with recent warnings kept
to explain a failure (`recent_log`) and the weight buffer types noted as models load (`buffers`). The
CPU backend's extra buffer types (repacked and AMX kernels) are read from ggml's registry once, and
`amx_unsafe` says when they must stay off.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from llmcli.config import Paths
from llmcli.engine import hardware

_lib: ModuleType | None = None
_lib_lock = threading.Lock()
_log_state: dict[str, Any] = {"verbose": False, "recent": deque(maxlen=20), "callback": None, "buffers": []}
_BUFFER_LINE = re.compile(r"(\S+) model buffer size")
_cpu: dict[str, hardware.CpuReport] = {}
_cpu_kernels: list[str] = []  # the CPU backend's extra buffer types: CPU_REPACK, AMX, ...


@contextmanager
def _stderr_silenced(silence: bool) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a moment (native code prints there directly)."""
    if not silence:
        yield
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _extra_buffer_types(lib: ModuleType) -> list[str]:
    """Names of the CPU backend's extra buffer types (the repacked weight kernels), via ggml's registry."""
    folder = Path(lib.__file__ or "").parent / "lib"
    found = [p for name in ("libggml.so", "libggml.dylib", "ggml.dll") if (p := folder / name).exists()]
    if not found:
        return []
    ggml = ctypes.CDLL(str(found[0]))  # already loaded by llama_cpp: this only finds its symbols
    ptr = ctypes.c_void_p
    ggml.ggml_backend_dev_by_type.restype = ptr
    ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    ggml.ggml_backend_dev_backend_reg.restype = ptr
    ggml.ggml_backend_dev_backend_reg.argtypes = [ptr]
    ggml.ggml_backend_reg_get_proc_address.restype = ptr
    ggml.ggml_backend_reg_get_proc_address.argtypes = [ptr, ctypes.c_char_p]
    ggml.ggml_backend_buft_name.restype = ctypes.c_char_p
    ggml.ggml_backend_buft_name.argtypes = [ptr]
    cpu = ggml.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
    address = cpu and ggml.ggml_backend_reg_get_proc_address(
        ggml.ggml_backend_dev_backend_reg(cpu), b"ggml_backend_dev_get_extra_bufts"
    )
    if not address:
        return []
    bufts = ctypes.CFUNCTYPE(ctypes.POINTER(ptr), ptr)(address)(cpu)
    names: list[str] = []
    while bufts and bufts[len(names)]:
        names.append(ggml.ggml_backend_buft_name(bufts[len(names)]).decode())
    return names


def llama() -> ModuleType:
    """The llama_cpp module: imported once (after keeping it off AMX where AMX faults), its logs routed
    through our callback, and the backend initialized."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _cpu["report"] = hardware.guard_amx(Paths.from_env().cache_dir)
            import llama_cpp

            @llama_cpp.llama_log_callback  # type: ignore[misc]
            def _log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
                line = text.decode("utf-8", errors="replace")
                if found := _BUFFER_LINE.search(line):  # which kernels hold the weights
                    _log_state["buffers"].append(found.group(1))
                if _log_state["verbose"]:
                    os.write(2, text)
                elif level in (2, 3) and line.strip():  # WARN, ERROR: kept to explain failures
                    _log_state["recent"].append(line.strip())

            _log_state["callback"] = _log  # keep a reference: C holds only a pointer
            llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            # Settled here, once: with the guard on, ggml prints "AMX is not ready" to stderr as it does.
            with _stderr_silenced(_cpu["report"].amx_guarded):
                _cpu_kernels.extend(_extra_buffer_types(llama_cpp))
            _lib = llama_cpp
    return _lib


def cpu_report() -> hardware.CpuReport:
    """The CPU as llama.cpp sees it in this process, AMX verdict and guard included."""
    llama()
    return _cpu["report"]


def amx_unsafe() -> bool:
    """AMX faults here and the guard could not be installed: extra buffer types must stay off."""
    report = cpu_report()
    return report.amx in ("faults", "untested", "off") and not report.amx_guarded


def set_verbose(verbose: bool) -> None:
    """Show llama.cpp's own log lines on stderr (off by default)."""
    _log_state["verbose"] = verbose


def recent_log() -> str:
    """The last warning or error llama.cpp logged since the previous call ("" if none)."""
    lines = list(_log_state["recent"])
    _log_state["recent"].clear()
    return lines[-1] if lines else ""


def clear_buffers() -> None:
    """Forget the weight buffer types noted so far (before a model loads)."""
    _log_state["buffers"].clear()


def buffers() -> tuple[str, ...]:
    """The buffer types llama.cpp put weights in since `clear_buffers`: CPU_REPACK, AMX, CUDA0, ..."""
    return tuple(dict.fromkeys(_log_state["buffers"]))


@dataclass(frozen=True)
class BuildInfo:
    """What the installed llama.cpp build can do on this CPU."""

    llama_cpp_python: str
    gpu_offload: bool
    mmap: bool
    system_info: str
    physical_cores: int
    logical_cpus: int
    cpu: hardware.CpuReport
    kernels: tuple[str, ...]  # the CPU weight kernels in use: repacked, AMX, or plain


def build_info() -> BuildInfo:
    """Capabilities of the llama.cpp build (GPU offload, CPU features and kernels, AMX verdict)."""
    lib = llama()
    system = lib.llama_print_system_info().decode("utf-8", errors="replace").strip()
    cpu = cpu_report()
    names = {"AMX": "AMX", "CPU_REPACK": "repacked"}
    kernels = [] if amx_unsafe() else [names.get(k, k) for k in _cpu_kernels]
    return BuildInfo(
        llama_cpp_python=lib.__version__,
        gpu_offload=bool(lib.llama_supports_gpu_offload()),
        mmap=bool(lib.llama_supports_mmap()),
        system_info=system,
        physical_cores=hardware.physical_cores(),
        logical_cpus=hardware.logical_cpus(),
        cpu=cpu,
        kernels=tuple(kernels) or ("plain",),
    )


def json_schema_to_gbnf(schema: str) -> str:
    """llama.cpp's (llama-cpp-python's) conversion of a JSON Schema text to a GBNF grammar."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf as convert

    return str(convert(schema))
