"""Tiny GGUF models with programmed behaviour, written with the `gguf` package for tests.

A "program model" has a real tokenizer (copied from ../shared/models/vocab) and one llama layer
whose attention and FFN weights are zero, so the hidden state is the current token's embedding.
Each programmed token gets its own embedding direction (a "state"), and the output matrix maps
that state to exactly the logits we choose for the next token. Unprogrammed tokens lead to EOS.
That makes greedy output, sampling distributions and byte-level UTF-8 splits exactly known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import gguf
import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
STORIES = SHARED / "models" / "stories260K.gguf"
VOCABS = SHARED / "models" / "vocab"
TEMPLATES = SHARED / "templates"
LOW = -30.0  # logit of every token a state does not name


@lru_cache(maxsize=4)
def _tokenizer_fields(vocab_path: Path) -> list[tuple[str, Any, gguf.GGUFValueType]]:
    """A vocab GGUF's tokenizer.* keys as (key, value, type); reading a 152k-token one takes seconds."""
    reader = gguf.GGUFReader(vocab_path)
    return [
        (key, field.contents(), field.types[0])
        for key, field in reader.fields.items()
        if key.startswith("tokenizer.")
    ]


def vocab_size(vocab: str) -> int:
    """Tokens in a shared vocabulary (the id the first added token gets)."""
    fields = _tokenizer_fields(VOCABS / f"ggml-vocab-{vocab}.gguf")
    return len(next(value for key, value, _ in fields if key == "tokenizer.ggml.tokens"))


def copy_tokenizer(
    writer: gguf.GGUFWriter,
    vocab_path: Path,
    *,
    keep_template: bool = False,
    added: Sequence[tuple[str, int]] = (),
) -> int:
    """Copy tokenizer.* keys from a vocab-only GGUF, with `added` (text, token type) tokens at the end;
    return the vocabulary size."""
    extra: dict[str, list[object]] = {
        "tokenizer.ggml.tokens": [text for text, _ in added],
        "tokenizer.ggml.scores": [0.0] * len(added),
        "tokenizer.ggml.token_type": [kind for _, kind in added],
    }
    n_vocab = 0
    for key, value, vtype in _tokenizer_fields(vocab_path):
        if key == "tokenizer.chat_template" and not keep_template:
            continue
        if vtype == gguf.GGUFValueType.ARRAY:
            value = [*value, *extra.get(key, [])]
            writer.add_array(key, value)
            if key == "tokenizer.ggml.tokens":
                n_vocab = len(value)
        else:
            writer.add_key_value(key, value, vtype)
    return n_vocab


def write_program_model(
    path: Path,
    program: Mapping[int, Mapping[int, float]],
    *,
    vocab: str = "llama-spm",
    eos: int = 2,
    n_ctx: int = 4096,
    chat_template: str | None = None,
    added_tokens: Sequence[tuple[str, int]] = (),
) -> Path:
    """Write a model where after token t the logits are program[t] (others LOW; unknown t -> eos).

    added_tokens: (text, token type) pairs appended to the vocabulary, e.g. a chat format's markers.
    """
    n_embd = 1 << max(6, math.ceil(math.log2(len(program) + 1)))
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("program-model")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_embd)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(n_embd // 4)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    n_vocab = copy_tokenizer(writer, VOCABS / f"ggml-vocab-{vocab}.gguf", added=added_tokens)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    embd = np.zeros((n_vocab, n_embd), np.float32)
    embd[:, 0] = 1.0  # state 0: "not programmed"
    scale = 1.0 / math.sqrt(n_embd)  # rms_norm(one-hot) = sqrt(n_embd) * one-hot
    out = np.full((n_vocab, n_embd), LOW * scale, np.float32)
    out[eos, 0] = 30.0 * scale
    for state, (token, nexts) in enumerate(program.items(), start=1):
        embd[token] = 0.0
        embd[token, state] = 1.0
        for nxt, logit in nexts.items():
            out[nxt, state] = logit * scale

    writer.add_tensor("token_embd.weight", embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    writer.add_tensor("output.weight", out)
    zeros = np.zeros((n_embd, n_embd), np.float32)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
        writer.add_tensor(f"blk.0.{name}.weight", zeros)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def chain(tokens: list[int], eos: int = 2) -> dict[int, dict[int, float]]:
    """A program that, after tokens[0], emits tokens[1:] then eos (greedy and sampled alike)."""
    steps = list(zip(tokens, [*tokens[1:], eos], strict=True))
    return {a: {b: 30.0} for a, b in steps}


PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}:{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def write_chat_model(path: Path, template: str = PLAIN_TEMPLATE, source: Path = STORIES) -> Path:
    """stories260K's real weights and tokenizer with a chat template added."""
    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(path), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "tokenizer.chat_template"):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, field.contents())
        else:
            writer.add_key_value(key, field.contents(), vtype)
    writer.add_chat_template(template)
    for tensor in reader.tensors:
        writer.add_tensor(
            tensor.name,
            tensor.data,
            raw_shape=tuple(int(d) for d in reversed(tensor.shape)),
            raw_dtype=tensor.tensor_type,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def quantize(source: Path, path: Path, quant: str) -> Path:
    """A copy of source quantized by llama.cpp (q8_0, q4_0, ...): its CPU kernels for those types."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
    assert llama_cpp.llama_model_quantize(str(source).encode(), str(path).encode(), params) == 0
    return path
