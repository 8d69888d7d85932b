"""A model's tokenizer through llama.cpp: text to tokens and back, token pieces, special and EOG tokens.

An engine's vocabulary comes with its model; `Vocabulary.load` reads only the vocabulary of a GGUF (no
weights), a tokenizer for a model that runs elsewhere or for inspecting its special tokens.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from llmcli.engine import binding
from llmcli.errors import ModelLoadError


class Vocabulary:
    """A model's tokenizer: text to tokens and back, through llama.cpp."""

    def __init__(self, lib: ModuleType, vocab: Any, model: Any = None) -> None:
        self._lib, self._vocab = lib, vocab
        self._model = model  # owned (and freed by close) when the vocabulary was loaded on its own
        self._pieces: dict[int, bytes] = {}
        self._special_pieces: dict[int, bytes] = {}

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Only the vocabulary of a GGUF (no weights): a tokenizer for a model that runs elsewhere."""
        lib = binding.llama()
        params = lib.llama_model_default_params()
        params.vocab_only = True
        model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ModelLoadError(f"llama.cpp could not read the vocabulary of {path}: {binding.recent_log()}")
        return cls(lib, lib.llama_model_get_vocab(model), model)

    def close(self) -> None:
        if self._model:
            self._lib.llama_model_free(self._model)
            self._model = None

    @property
    def n_tokens(self) -> int:
        """The vocabulary's size."""
        return int(self._lib.llama_vocab_n_tokens(self._vocab))

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Tokens of text; add_special adds BOS where the model wants it."""
        raw = text.encode("utf-8")
        n_max = len(raw) + 8
        buf = (self._lib.llama_token * n_max)()
        n = self._lib.llama_tokenize(self._vocab, raw, len(raw), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (self._lib.llama_token * n_max)()
            n = self._lib.llama_tokenize(self._vocab, raw, len(raw), buf, n_max, add_special, parse_special)
        return list(buf[:n])

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        """The bytes one token stands for; control tokens render as nothing unless special."""
        cache = self._special_pieces if special else self._pieces
        piece = cache.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(256)  # per call: threads may ask at the same time
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, 256, 0, special)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._lib.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
            piece = cache[token] = buf.raw[:n]
        return piece

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of tokens, concatenated piece by piece."""
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def special_text(self) -> tuple[str, str]:
        """The text of the BOS and EOS tokens (for chat templates), "" where the model has none."""
        bos, eos = self._lib.llama_vocab_bos(self._vocab), self._lib.llama_vocab_eos(self._vocab)
        return tuple(  # type: ignore[return-value]
            self.token_bytes(t, special=True).decode("utf-8", errors="replace") if t >= 0 else ""
            for t in (bos, eos)
        )

    def bos(self) -> int:
        """The BOS token, or -1 where the model has none."""
        return int(self._lib.llama_vocab_bos(self._vocab))

    def is_eog(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, ...)."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def grammar_sampler(self, grammar: str) -> Any:
        """llama.cpp's sampler for a GBNF grammar over this vocabulary (None when it cannot parse it)."""
        return self._lib.llama_sampler_init_grammar(self._vocab, grammar.encode("utf-8"), b"root")
