"""Templates for model files without one: inferred from real vocabularies' special tokens, else plain.

Vocabularies are real llama.cpp tokenizers: those in ../shared/models/vocab, and copies of the
llama-spm one with a family's markers added as control tokens (the way a model's added tokens are).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import gguf
import pytest
from tinymodel import VOCABS, write_chat_model, write_program_model

from llmcli.chat.conversation import Chat
from llmcli.chat.templates import (
    FAMILIES,
    PLAIN_STOP,
    Family,
    Tokenizer,
    infer_family,
    is_special_token,
    pick_template,
)
from llmcli.engine import EngineOptions, LocalEngine, Vocabulary
from llmcli.sampling import SamplingConfig
from llmcli.tasks.runtime import LoadedModel

Run = Callable[..., subprocess.CompletedProcess[str]]
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "What is the capital of France?"},
]
ALL_MARKERS = sorted({m for f in FAMILIES for m in f.markers})
CONTROL = 3  # llama.cpp's token type for control tokens


def family_name(tokenizer: Tokenizer, architecture: str | None = None) -> str | None:
    found = infer_family(tokenizer, architecture)
    return found.name if found else None


@lru_cache(maxsize=2)
def _vocab_fields(base: str) -> tuple[str, list[tuple[str, Any, gguf.GGUFValueType]]]:
    """A vocab GGUF's architecture and its keys as (key, value, type); reading them is the slow part."""
    reader = gguf.GGUFReader(VOCABS / f"ggml-vocab-{base}.gguf")
    fields = [
        (key, field.contents(), field.types[0])
        for key, field in reader.fields.items()
        if not key.startswith("GGUF.") and key not in ("general.architecture", "tokenizer.chat_template")
    ]
    return reader.fields["general.architecture"].contents(), fields


def write_vocab(path: Path, markers: tuple[str, ...], base: str = "llama-spm") -> Path:
    """A vocabulary-only GGUF: base's tokenizer with markers added as control tokens."""
    arch, fields = _vocab_fields(base)
    writer = gguf.GGUFWriter(str(path), arch)
    added: dict[str, list[Any]] = {
        "tokenizer.ggml.tokens": list(markers),
        "tokenizer.ggml.scores": [0.0] * len(markers),
        "tokenizer.ggml.token_type": [CONTROL] * len(markers),
    }
    for key, value, vtype in fields:
        if key == f"{arch}.vocab_size":
            value += len(markers)
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, [*value, *added.get(key, [])])
        else:
            writer.add_key_value(key, value, vtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def vocab_with(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Vocabulary]]:
    loaded: dict[tuple[str, ...], Vocabulary] = {}

    def make(*markers: str) -> Vocabulary:
        if markers not in loaded:
            path = write_vocab(tmp_path_factory.mktemp("vocab") / "vocab.gguf", markers)
            loaded[markers] = Vocabulary.load(path)
        return loaded[markers]

    yield make
    for vocabulary in loaded.values():
        vocabulary.close()


@pytest.mark.parametrize(
    ("vocab", "architecture", "family"),
    [
        ("gpt-2", "gpt2", None),
        ("llama-spm", "llama", None),
        ("phi-3", "phi3", "phi-3"),
        ("qwen2", "qwen2", "chatml"),
    ],
)
def test_shared_vocabularies(vocab: str, architecture: str, family: str | None) -> None:
    vocabulary = Vocabulary.load(VOCABS / f"ggml-vocab-{vocab}.gguf")
    try:
        assert family_name(vocabulary, architecture) == family
        template = pick_template(None, tokenizer=vocabulary, architecture=architecture)
        assert template.label == (f"inferred ({family})" if family else "fallback")
        assert template.stop == (() if family else PLAIN_STOP)
    finally:
        vocabulary.close()


def test_a_marker_must_be_one_special_token() -> None:
    vocabulary = Vocabulary.load(VOCABS / "ggml-vocab-llama-spm.gguf")
    try:
        assert is_special_token(vocabulary, "</s>")
        for text in ("[INST]", "<|im_start|>", "<start_of_turn>", "hello"):  # several tokens, or plain text
            assert not is_special_token(vocabulary, text)
    finally:
        vocabulary.close()


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_each_family_from_its_markers_prints_only_tokens_it_has(
    family: Family, vocab_with: Callable[..., Vocabulary]
) -> None:
    vocabulary = vocab_with(*family.markers)
    assert infer_family(vocabulary) == family
    bos, eos = vocabulary.special_text()
    template = pick_template(None, bos_token=bos, eos_token=eos, tokenizer=vocabulary)
    assert (template.origin, template.family, template.source) == ("inferred", family.name, family.source)
    text = template.render(CONVERSATION)
    pieces = [
        vocabulary.token_bytes(t, special=True).decode()
        for t in vocabulary.tokenize(text, parse_special=True)
    ]
    for marker in ALL_MARKERS:  # every marker printed is one special token, never text the model reads
        assert text.count(marker) == pieces.count(marker), marker
    assert [m["content"] in text for m in CONVERSATION] == [True] * 4
    assert text.index("Be brief.") < text.index("Hi") < text.index("Hello.")


def test_the_architecture_breaks_ties(vocab_with: Callable[..., Vocabulary]) -> None:
    both = vocab_with("<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>")
    names = [family_name(both, arch) for arch in (None, "llama", "qwen2", "gemma3")]
    assert names == ["chatml", "chatml", "chatml", "gemma"]


# --- through the real engine ----------------------------------------------------------------------

COLON, PARIS, NEWLINE, USER = 29901, 3681, 13, 2659  # llama-spm and phi-3: ":", " Paris", "\n", "User"
END, USER_TURN, PHI3_EOS = 32007, 32010, 32000  # phi-3: <|end|>, <|user|>, EOS


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No template, a vocabulary without chat markers; answers " Paris\\nUser: Paris\\nUser:..." forever."""
    program = {COLON: {PARIS: 30.0}, PARIS: {NEWLINE: 30.0}, NEWLINE: {USER: 30.0}, USER: {COLON: 30.0}}
    return write_program_model(tmp_path_factory.mktemp("plain") / "plain.gguf", program)


@pytest.fixture(scope="module")
def phi3_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No template, Phi-3's vocabulary; after "<|assistant|>\\n" answers " Paris<|end|>"."""
    program = {NEWLINE: {PARIS: 30.0}, PARIS: {END: 30.0}}
    return write_program_model(
        tmp_path_factory.mktemp("phi3") / "phi3.gguf", program, vocab="phi-3", eos=PHI3_EOS
    )


def test_plain_fallback_stops_before_the_next_user_turn(plain_model: Path) -> None:
    with LocalEngine(plain_model, EngineOptions(n_ctx=512)) as engine:
        template = LoadedModel(engine, None, model=engine).chat_template()
        assert template.label == "fallback"
        chat = Chat(engine, template, SamplingConfig(temperature=0.0, max_tokens=40))
        assert "".join(chat.ask("What is the capital of France?")) == " Paris"
        assert chat.turn is not None and chat.turn.completion.finish_reason == "stop"
        assert "".join(chat.ask("Sure?")) == " Paris"  # and the next turn goes on from there
        assert chat.template.render(chat.visible()).endswith("User: Sure?\n\nAssistant: Paris\n\nAssistant:")


def test_inferred_phi3_through_the_engine(phi3_model: Path) -> None:
    with LocalEngine(phi3_model, EngineOptions(n_ctx=512)) as engine:
        template = LoadedModel(engine, None, model=engine).chat_template()
        assert template.label == "inferred (phi-3)"
        chat = Chat(engine, template, SamplingConfig(temperature=0.0, max_tokens=40), system="Be brief.")
        assert "".join(chat.ask("What is the capital of France?")) == " Paris"
        assert "".join(chat.ask("Sure?")) == " Paris"
        prompt = template.render(chat.visible())
        tokens = chat.encode(prompt)
        assert tokens.count(USER_TURN) == prompt.count("<|user|>") == 2  # each marker one special token
        assert chat.turn is not None and chat.turn.completion.stats.cached_tokens > 0


# --- the installed command ------------------------------------------------------------------------


def test_piped_chat_shows_no_markers(run_cli: Run, phi3_model: Path, plain_model: Path) -> None:
    answer = run_cli("chat", "-m", str(phi3_model), "--greedy", input="What is the capital of France?\n")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout == " Paris\n"
    plain = run_cli("chat", "-m", str(plain_model), "--greedy", "-n", "40", input="Capital of France?\n")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "Paris"


def test_models_show_says_which_template(
    run_cli: Run, phi3_model: Path, plain_model: Path, tmp_path: Path
) -> None:
    shown = run_cli("models", "show", str(phi3_model), "--json")
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)
    assert (facts["chat_template"], facts["template"]) == (False, "inferred (phi-3)")
    assert shown.stderr.strip() == (
        "warning: phi3.gguf has no chat template: chat uses the phi-3 template, inferred from its "
        "special tokens"
    )
    text = run_cli("models", "show", str(plain_model))
    assert "chat template   fallback\n" in text.stdout
    assert "warning: plain.gguf has no chat template: chat uses a plain 'User:'/'Assistant:'" in text.stderr
    with_template = write_chat_model(tmp_path / "templated.gguf")
    shown = run_cli("models", "show", str(with_template))
    assert "chat template   gguf\n" in shown.stdout and shown.stderr == ""


def test_models_import_warns_and_a_registry_template_wins(
    run_cli: Run, phi3_model: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    imported = run_cli("models", "import", str(phi3_model), "--alias", "bare")
    assert imported.returncode == 0, imported.stderr
    assert "registered bare" in imported.stderr
    assert "warning: phi3.gguf has no chat template: chat uses the phi-3 template" in imported.stderr
    templated = run_cli("models", "import", str(write_chat_model(tmp_path / "t.gguf")), "--alias", "t")
    assert templated.returncode == 0 and "warning" not in templated.stderr
    toml = Path(cli_env["LLMCLI_HOME"]) / "config" / "models.toml"
    toml.write_text(toml.read_text().replace('[models."bare"]', '[models."bare"]\nchat_template = "{{ 1 }}"'))
    shown = run_cli("models", "show", "bare", "--json")
    assert json.loads(shown.stdout)["template"] == "registry"
    assert "chat uses the chat_template override in models.toml" in shown.stderr
