"""A small, defensive GGUF header reader.

It reads metadata and tensor descriptions without loading weights, and checks that the file
is as long as its tensors need, so a truncated or corrupt file is refused with a clear message
before llama.cpp ever sees it.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcli.errors import ModelFormatError, ModelNotFoundError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
SMALL_ARRAY = 64  # arrays longer than this are summarized, not kept (vocabularies have 100k+ items)

# value type id -> struct format (fixed-size scalars)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_LENGTH = struct.Struct("<Q")  # a string's byte count

# ggml type id -> (name, elements per block, bytes per block)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}


# general.file_type (llama_ftype) -> the quantization name users know
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array, kept as its length only."""

    count: int


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's description from the header."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.type_id][0]

    @property
    def nbytes(self) -> int:
        _, block, size = GGML_TYPES[self.type_id]
        return self.n_elements // block * size


@dataclass
class GGUFInfo:
    """What a GGUF file says about itself."""

    path: Path
    version: int
    file_size: int
    data_offset: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def required_size(self) -> int:
        return self.data_offset + max((t.offset + t.nbytes for t in self.tensors), default=0)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) else None

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def quantization(self) -> str:
        """The file type's name (Q4_K_M, ...), else the most common tensor type."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        types = [t.type_name for t in self.tensors if len(t.shape) > 1]
        return max(set(types), key=types.count) if types else "unknown"

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    def kv_cache_bytes(self, n_ctx: int, k_bytes: float = 2.0, v_bytes: float = 2.0) -> int | None:
        """Memory the K and V cache of n_ctx tokens takes (bytes per value: f16 by default), from the
        header's layer and head sizes; None where the header does not say (recurrent state, unknown
        shapes). Sliding-window layers count in full: the engine keeps their whole cache, so that
        cutting it back stays exact."""
        arch, meta = self.architecture, self.metadata
        if any(f"{arch}.{key}" in meta for key in ("ssm.state_size", "wkv.head_size")):
            return None

        def number(key: str) -> Any:
            value = meta.get(f"{arch}.{key}")
            return value if isinstance(value, int | list) else None

        n_layer, n_embd, n_head = (
            number("block_count"),
            number("embedding_length"),
            number("attention.head_count"),
        )
        if not isinstance(n_layer, int) or not isinstance(n_embd, int) or not n_head:
            return None
        heads = number("attention.head_count_kv") or n_head
        per_layer = heads if isinstance(heads, list) else [heads] * n_layer
        first_heads = n_head[0] if isinstance(n_head, list) else n_head
        k_len = number("attention.key_length") or n_embd // max(first_heads, 1)
        v_len = number("attention.value_length") or k_len
        per_token = sum(
            int(n_kv) * (int(k_len) * k_bytes + int(v_len) * v_bytes) for n_kv in per_layer[:n_layer]
        )
        total = n_ctx * per_token
        return int(total)


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise _corrupt(self.path, "its header ends past the end of the file")
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("Q")
        if self.pos + n > len(self.buf):
            raise _corrupt(self.path, "a metadata string runs past the end of the file")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(raw).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.take("I"), self.take("Q")
            if count > len(self.buf):
                raise _corrupt(self.path, f"an array claims {count} items")
            if count > SMALL_ARRAY:
                self.skip_array(etype, count)
                return ArraySummary(count)
            return [self.value(etype) for _ in range(count)]
        raise _corrupt(self.path, f"unknown metadata type {vtype}")

    def skip_array(self, etype: int, count: int) -> None:
        if etype in _SCALARS:
            self.pos += struct.calcsize("<" + _SCALARS[etype]) * count
            if self.pos > len(self.buf):
                raise _corrupt(self.path, "a metadata array runs past the end of the file")
        elif etype == _STRING:
            # A vocabulary's token texts (262k for Gemma 3) are skipped on every model load: in a
            # loop this tight, as method calls they took a third of a second.
            length, buf, pos = _LENGTH.unpack_from, self.buf, self.pos
            try:
                for _ in range(count):
                    pos += 8 + length(buf, pos)[0]
            except struct.error:  # a length read past the end of the file
                pos = len(buf) + 1
            if pos > len(buf):
                raise _corrupt(self.path, "a metadata string runs past the end of the file")
            self.pos = pos
        else:
            for _ in range(count):
                self.value(etype)


def _corrupt(path: Path, why: str) -> ModelFormatError:
    return ModelFormatError(
        f"{path} is a truncated or corrupt GGUF file: {why}",
        hint="download it again (or run `llmcli models pull` for a registry model)",
    )


def read_gguf(path: Path | str) -> GGUFInfo:
    """Read and check a GGUF header; raise a one-line error for anything llama.cpp could choke on."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(
            f"model file not found: {path}", hint="check the path, or see `llmcli --help`"
        )
    if path.is_dir():
        raise ModelNotFoundError(f"{path} is a directory, not a GGUF model file")
    size = path.stat().st_size
    if size == 0:
        raise ModelFormatError(f"{path} is empty (0 bytes), not a GGUF model", hint="download it again")
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, path, size)
    except PermissionError as exc:
        raise ModelNotFoundError(f"cannot read {path}: permission denied") from exc


def _parse(buf: mmap.mmap, path: Path, size: int) -> GGUFInfo:
    if buf[:4] != GGUF_MAGIC:
        raise ModelFormatError(
            f"{path} is not a GGUF model file (it starts with {bytes(buf[:4])!r}, not b'GGUF')",
            hint="llmcli runs GGUF files; convert other formats with llama.cpp's convert_hf_to_gguf.py",
        )
    r = _Reader(buf, path)
    r.pos = 4
    version = r.take("I")
    if version not in (2, 3):
        raise ModelFormatError(f"{path} is GGUF version {version}; llmcli reads versions 2 and 3")
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    if n_tensors > size or n_kv > size:
        raise _corrupt(path, f"it claims {n_tensors} tensors and {n_kv} metadata keys")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.take("I"))
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take("I")
        if n_dims > 8:
            raise _corrupt(path, f"tensor {name!r} claims {n_dims} dimensions")
        shape = tuple(r.take("Q") for _ in range(n_dims))
        type_id, offset = r.take("I"), r.take("Q")
        if type_id not in GGML_TYPES:
            raise _corrupt(path, f"tensor {name!r} has unknown type {type_id}")
        tensors.append(TensorInfo(name, shape, type_id, offset))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        raise _corrupt(path, f"bad alignment {alignment!r}")
    data_offset = (r.pos + alignment - 1) // alignment * alignment
    info = GGUFInfo(path, version, size, data_offset, metadata, tensors)
    if info.required_size > size:
        raise _corrupt(path, f"its tensors need {info.required_size:,} bytes but the file has {size:,}")
    return info
