"""The machine llama.cpp runs on: CPU features, cores, memory, and whether AMX really works here.

Some virtual machines advertise AMX (cpuinfo lists `amx_tile`, and the kernel grants the tile
permission) yet fault on the first tile instruction. llama.cpp built with GGML_NATIVE, as
llama-cpp-python builds by default, then puts quantized weights in its AMX buffer type and dies
with SIGILL. A child process tries the instructions once per CPU and kernel (the verdict is
cached); where they fault, `guard_amx` makes the tile-permission request fail for this process
before llama.cpp asks, so ggml leaves its AMX buffer type out and keeps its other repacked
kernels (AMX off costs nothing else; turning all extra buffer types off would cost 35-45%).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llmcli.fsutil import atomic_write_text

FEATURES = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")

# The AMX states: absent (not advertised), works, faults (SIGILL on a tile instruction), refused
# (the kernel denies the tile permission, so ggml leaves AMX out itself), untested (the probe
# could not run: treated as faults), off/on (LLMCLI_AMX).
AMX_ENV = "LLMCLI_AMX"

_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18
_SYS_ARCH_PRCTL = 158  # x86_64
_SYS_SECCOMP = 317
_AUDIT_ARCH_X86_64 = 0xC000003E

# ldtilecfg (%rdi); tilezero %tmm0; tilerelease; ret
_AMX_CODE = bytes.fromhex("c4e2784907c4e27b49c0c4e27849c0c3")

_PROBE = f"""
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if sys.argv[1:] == ["ask"] and libc.syscall({_SYS_ARCH_PRCTL}, {_ARCH_REQ_XCOMP_PERM}, {_XFEATURE_XTILEDATA}):
    sys.exit(3)
page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(bytes.fromhex({_AMX_CODE.hex()!r}))
func = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
config = (ctypes.c_uint8 * 64)()
config[0] = 1  # palette 1
config[16] = 64  # tmm0: 64 bytes a row
config[48] = 16  # tmm0: 16 rows
func(ctypes.addressof(config))
"""


@dataclass(frozen=True)
class CpuReport:
    """What llama.cpp's kernels depend on, and what llmcli did about AMX."""

    model: str
    machine: str
    features: tuple[str, ...]  # those of FEATURES the CPU advertises
    amx: str  # absent | works | faults | refused | off | on
    amx_guarded: bool  # True: AMX is kept away from llama.cpp in this process

    @property
    def amx_usable(self) -> bool:
        return self.amx in ("works", "on")


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags (Linux; elsewhere the platform's processor string and none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model or platform.machine(), flags


def _probe_key(model: str, flags: frozenset[str]) -> str:
    facts = [model, " ".join(sorted(flags)), platform.release(), platform.machine()]
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


def probe_amx(*, request_permission: bool = True) -> str:
    """Try the tile instructions in a child process: works, faults, refused or untested.

    Without request_permission the instructions fault on every CPU (the kernel arms AMX per
    process only on request): the check that a fault is seen.
    """
    result = subprocess.run(
        [sys.executable, "-S", "-c", _PROBE, *(["ask"] if request_permission else [])],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    if result.returncode == 0:
        return "works"
    if result.returncode < 0:
        return "faults"  # killed by SIGILL (or another signal) on a tile instruction
    return "refused" if result.returncode == 3 else "untested"


def amx_state(cache_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """AMX here: LLMCLI_AMX=on|off wins; else absent, or the probe's verdict (cached per CPU and kernel)."""
    env = os.environ if environ is None else environ
    choice = env.get(AMX_ENV, "auto").strip().lower()
    if choice in ("on", "off"):
        return choice
    model, flags = _cpuinfo()
    if "amx_tile" not in flags or platform.machine() not in ("x86_64", "AMD64"):
        return "absent"
    cache = cache_dir / "cpu-probe.json"
    key = _probe_key(model, flags)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    verdict = known.get(key)
    if verdict not in ("works", "faults", "refused"):
        verdict = probe_amx()
        known[key] = verdict
        with contextlib.suppress(OSError):  # an unwritable cache only means probing again next time
            atomic_write_text(cache, json.dumps(known, indent=1) + "\n")
    return str(verdict)


def _seccomp_deny_tile_permission() -> bool:
    """Make arch_prctl(ARCH_REQ_XCOMP_PERM) fail with EPERM in every thread of this process."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return False

    class Filter(ctypes.Structure):
        _fields_ = (
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint),
        )

    class Program(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter)))

    load, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    allow, eperm = 0x7FFF0000, 0x00050000 | 1
    rules = [
        (load, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, 5, _AUDIT_ARCH_X86_64),
        (load, 0, 0, 0),  # seccomp_data.nr
        (jeq, 0, 3, _SYS_ARCH_PRCTL),
        (load, 0, 0, 16),  # seccomp_data.args[0], low half
        (jeq, 0, 1, _ARCH_REQ_XCOMP_PERM),
        (ret, 0, 0, eperm),
        (ret, 0, 0, allow),
    ]
    table = (Filter * len(rules))(*(Filter(*r) for r in rules))
    program = Program(len(rules), table)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    pr_set_no_new_privs, seccomp_set_mode_filter, filter_flag_tsync = 38, 1, 1
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        return False
    return libc.syscall(_SYS_SECCOMP, seccomp_set_mode_filter, filter_flag_tsync, ctypes.byref(program)) == 0


_guard: dict[str, bool] = {}


def guard_amx(cache_dir: Path) -> CpuReport:
    """Before llama.cpp loads: keep it off AMX where AMX faults (or LLMCLI_AMX=off). Idempotent.

    Returns the report; `amx_guarded` False with amx in (faults, untested, off) means the guard could not be
    installed and the caller must turn llama.cpp's extra buffer types off instead.
    """
    amx = amx_state(cache_dir)
    if amx in ("faults", "untested", "off") and "done" not in _guard:
        _guard["done"] = _seccomp_deny_tile_permission()
    return report(amx, _guard.get("done", False))


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # macOS, Windows
        return max(1, (os.cpu_count() or 2) // 2) if (os.cpu_count() or 1) > 1 else 1
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (
                    topo.joinpath("physical_package_id").read_text().strip(),
                    topo.joinpath("core_id").read_text().strip(),
                )
            )
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def logical_cpus() -> int:
    """CPUs this process may run on: the most threads that can run at once."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available for new allocations (Linux MemAvailable, else physical), None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def report(amx: str, guarded: bool = False) -> CpuReport:
    """The CPU's model and features with the given AMX state."""
    model, flags = _cpuinfo()
    return CpuReport(model, platform.machine(), tuple(f for f in FEATURES if f in flags), amx, guarded)
