"""Options shared by commands, and turning them into settings and sampling configs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

# --- shell completion: each callback imports what it reads, so `--help` never pays for it -----


def complete_model(incomplete: str) -> list[tuple[str, str]]:
    """Model names for shell completion: registry aliases (ALIAS:QUANT after the colon), downloads."""
    from llmcli.errors import LlmcliError
    from llmcli.models.registry import load_registry
    from llmcli.models.store import Store

    try:
        entries = list(load_registry().entries.values())
    except (LlmcliError, OSError):  # a broken models.toml must not hide the downloaded models
        entries = []
    try:
        files = Store().downloaded()
    except OSError:
        files = []
    on_disk = {(f.repo, f.filename) for f in files}
    alias, colon, _ = incomplete.partition(":")
    names: dict[str, str] = {}
    for entry in entries:
        have = {q for q, name in entry.files.items() if (entry.repo, name) in on_disk}
        local = entry.path is not None or bool(have)
        names[entry.alias] = ("downloaded; " if local else "") + entry.description
        if colon and entry.alias == alias:
            for quant in entry.files:
                size = entry.sizes.get(quant, "")
                names[f"{alias}:{quant}"] = f"{size}, downloaded" if quant in have else size
    registered = {(e.repo, name) for e in entries for name in e.files.values()}
    for f in files:
        if (f.repo, f.filename) not in registered:
            names[f"{f.repo}/{f.filename}"] = f"downloaded, {f.size / 1e9:.2f} GB"
    return list(names.items())


def complete_session(incomplete: str) -> list[tuple[str, str]]:
    """Saved chat session names for shell completion, with each one's first message."""
    from llmcli.chat.sessions import SessionStore
    from llmcli.config import Paths

    records = SessionStore(Paths.from_env().data_dir / "sessions").list()
    return [
        (r.name, " ".join(next((m["content"] for m in r.messages if m["role"] == "user"), "").split())[:60])
        for r in records
    ]


def _complete_gpu_layers() -> list[tuple[str, str]]:
    return [("all", "every layer"), ("auto", "all when llama.cpp was built with GPU support")]


def _complete_flash_attn() -> list[str]:
    return ["on", "off", "auto"]


# --- options shared by every command that runs a model ---------------------------------------

Model = Annotated[
    str | None,
    typer.Option(
        "-m",
        "--model",
        help="GGUF file to run. [env: LLMCLI_MODEL]",
        show_default=False,
        autocompletion=complete_model,
    ),
]
Ctx = Annotated[
    int | None,
    typer.Option(
        "--ctx",
        help="Context size in tokens.",
        show_default="the model's trained length, less where its KV cache would not fit in memory",
    ),
]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads.", show_default="physical cores")]
GpuLayers = Annotated[
    str | None,
    typer.Option(
        "--gpu-layers",
        "-ngl",
        help="Layers to offload to the GPU: N, all or auto.",
        show_default="auto: all when llama.cpp was built with GPU support, else none",
        autocompletion=_complete_gpu_layers,
    ),
]
FlashAttn = Annotated[
    str | None,
    typer.Option(
        "--flash-attn",
        help="Flash attention: on, off or auto.",
        show_default="auto: on with GPU offload, off on the CPU where it slows decoding at depth",
        autocompletion=_complete_flash_attn,
    ),
]


def _complete_cache_type() -> list[str]:
    return ["f16", "q8_0", "q4_0"]


CacheTypeK = Annotated[
    str | None,
    typer.Option(
        "--cache-type-k",
        "-ctk",
        help="KV cache type of keys: f16, q8_0 (half the memory) or q4_0 (about a quarter).",
        show_default="f16",
        autocompletion=_complete_cache_type,
    ),
]
CacheTypeV = Annotated[
    str | None,
    typer.Option(
        "--cache-type-v",
        "-ctv",
        help="KV cache type of values: f16, q8_0 or q4_0 (quantized values turn flash attention on).",
        show_default="f16",
        autocompletion=_complete_cache_type,
    ),
]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "-m",
        "--model",
        help="Model to run; repeat to compare models. [env: LLMCLI_MODEL]",
        show_default=False,
        autocompletion=complete_model,
    ),
]
Backend = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Generate on an OpenAI-compatible server at URL (llama-server, vLLM, llama_cpp.server); "
        "-m then names the server's model. Its API key comes from LLMCLI_API_KEY. [env: LLMCLI_BACKEND]",
        show_default=False,
        metavar="URL",
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Verbose = Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's own log on stderr.")]

# --- sampling options --------------------------------------------------------------------------

Greedy = Annotated[
    bool,
    typer.Option("--greedy", help="Always pick the most likely token (argmax).", rich_help_panel="Sampling"),
]
Temperature = Annotated[
    float | None,
    typer.Option(
        "-t",
        "--temperature",
        help="Softmax temperature; 0 is greedy.",
        show_default="0.8",
        rich_help_panel="Sampling",
    ),
]
TopK = Annotated[
    int | None,
    typer.Option(
        "--top-k",
        help="Sample from the K most likely tokens (0: off).",
        show_default=False,
        rich_help_panel="Sampling",
    ),
]
TopP = Annotated[
    float | None,
    typer.Option(
        "--top-p",
        help="Nucleus: sample from the smallest set of tokens with probability >= P.",
        show_default=False,
        rich_help_panel="Sampling",
    ),
]
MinP = Annotated[
    float | None,
    typer.Option(
        "--min-p",
        help="Drop tokens less likely than P times the most likely one.",
        show_default=False,
        rich_help_panel="Sampling",
    ),
]
RepeatPenalty = Annotated[
    float | None,
    typer.Option(
        "--repeat-penalty",
        help="Penalize tokens seen in the last 64 (1.0: off).",
        show_default="1.0",
        rich_help_panel="Sampling",
    ),
]
Seed = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="Seed for reproducible sampling.",
        show_default="fresh randomness every run",
        rich_help_panel="Sampling",
    ),
]
MaxTokens = Annotated[
    int | None,
    typer.Option(
        "-n",
        "--max-tokens",
        help="Stop after N tokens.",
        show_default="until the model ends or the context is full",
        rich_help_panel="Sampling",
    ),
]
Stop = Annotated[
    list[str] | None,
    typer.Option(
        "--stop", help="Stop before this text (repeatable).", show_default=False, rich_help_panel="Sampling"
    ),
]

IgnoreEos = Annotated[
    bool,
    typer.Option(
        "--ignore-eos",
        help="Keep generating past end-of-generation tokens (for benchmarks).",
        rich_help_panel="Sampling",
    ),
]

SAMPLING_HELP = (
    "Sampling: with none of --top-k/--top-p/--min-p given, top-p 0.95 and min-p 0.05 apply; "
    "any of them given alone means exactly that method (plus temperature)."
)

Jsonl = Annotated[
    Path | None,
    typer.Option("--jsonl", help="Write one JSON record per input to FILE, resumable.", show_default=False),
]
Force = Annotated[bool, typer.Option("--force", help="Redo inputs that are already done.")]
PromptFile = Annotated[
    Path | None,
    typer.Option(
        "--prompt-file", help="TOML file overriding the prompts (see llmcli/prompts.py).", show_default=False
    ),
]

Speculative = Annotated[
    bool,
    typer.Option(
        "--speculative/--no-speculative",
        help="Draft tokens by looking up the context's last words earlier in it, verified in one batch.",
        rich_help_panel="Speed",
    ),
]
DraftTokens = Annotated[
    int,
    typer.Option(
        "--draft-tokens",
        min=1,
        max=64,
        help="Most tokens drafted per step (adaptive).",
        rich_help_panel="Speed",
    ),
]

DraftModel = Annotated[
    str | None,
    typer.Option(
        "--draft-model",
        help="A small model of the same tokenizer that drafts for -m (instead of prompt lookup); "
        "the output is unchanged. One document at a time only.",
        show_default=False,
        rich_help_panel="Speed",
        autocompletion=complete_model,
    ),
]

Parallel = Annotated[
    int | None,
    typer.Option(
        "--parallel",
        min=1,
        max=64,
        help="Documents and chunks decoded together in one context; --ctx is split between them.",
        show_default="up to 4 for several inputs, keeping 1,024 context tokens each; 1 for one input",
        rich_help_panel="Speed",
    ),
]

PromptCacheFlag = Annotated[
    bool,
    typer.Option(
        "--prompt-cache",
        help="Save the KV state of long prompts on disk and restore it next time (LRU, bounded).",
        rich_help_panel="Speed",
    ),
]

Files = Annotated[
    list[Path] | None,
    typer.Option(
        "-f",
        "--file",
        help="Put a file into the prompt under a `File: NAME` line, fenced: text, Markdown, HTML or PDF; "
        "a glob or folder reads each file; `-` reads stdin. Repeatable, in order.",
        show_default=False,
        allow_dash=True,
        metavar="PATH",
    ),
]


# --- structured output -------------------------------------------------------------------------

SchemaOption = Annotated[
    str | None,
    typer.Option(
        "--schema",
        help="Output must be JSON under this JSON Schema: a .json file, inline JSON, `object` (any JSON "
        "object), or fields such as 'title, date: date, people: list, amount: number'.",
        show_default=False,
        rich_help_panel="Structured output",
    ),
]
GrammarOption = Annotated[
    Path | None,
    typer.Option(
        "--grammar",
        help="Output must follow this GBNF grammar file (llama.cpp's format; root is the start rule).",
        show_default=False,
        rich_help_panel="Structured output",
    ),
]


def constraint(params: dict[str, Any]) -> Any:
    """The Schema (grammar and JSON Schema) that --schema or --grammar asks for, or None."""
    from llmcli.errors import UsageError
    from llmcli.structured import ANY_OBJECT, Schema, compile_schema, load_schema, read_grammar

    schema, grammar = params.get("schema"), params.get("grammar")
    if schema is not None and grammar is not None:
        raise UsageError("give --schema or --grammar, not both")
    if grammar is not None:
        return Schema(None, read_grammar(grammar))
    if schema is None:
        return None
    return compile_schema(ANY_OBJECT if schema.strip() == "object" else load_schema(schema))


# --- thinking models ---------------------------------------------------------------------------


def _complete_think() -> list[tuple[str, str]]:
    return [("on", "think before answering"), ("off", "answer at once"), ("auto", "the model's default")]


def _think_option(default: str) -> Any:
    return typer.Option(
        "--think",
        help="A thinking model thinks before it answers (on), answers at once (off), or follows its template "
        "(auto). [env: LLMCLI_THINK]",
        show_default=default,
        autocompletion=_complete_think,
        rich_help_panel="Thinking",
    )


Think = Annotated[str | None, _think_option("auto")]
ThinkOff = Annotated[str | None, _think_option("off: thinking rarely helps this task and costs its tokens")]
ReasoningBudget = Annotated[
    int | None,
    typer.Option(
        "--reasoning-budget",
        help="Thinking tokens at most; then thinking is ended and the answer follows (0: none). "
        "[env: LLMCLI_REASONING_BUDGET]",
        show_default="no limit",
        rich_help_panel="Thinking",
    ),
]
HideThinking = Annotated[
    bool,
    typer.Option(
        "--hide-thinking",
        help="Do not show the thinking (on a terminal it streams dimmed on stderr; stdout never gets it).",
        rich_help_panel="Thinking",
    ),
]


def thinking(params: dict[str, Any], default: str) -> Any:
    """--think and --reasoning-budget over the config file and LLMCLI_THINK/LLMCLI_REASONING_BUDGET."""
    from llmcli.config import load_settings
    from llmcli.reasoning import Thinking

    config = load_settings()
    mode = params.get("think") or config.think or default
    budget = params.get("reasoning_budget")
    return Thinking.parse(mode, config.reasoning_budget if budget is None else budget)


def parallel(params: dict[str, Any], inputs: int) -> tuple[int, bool]:
    """Sequences to decode together, and whether that number was chosen automatically."""
    if params.get("draft_model"):  # drafts help one sequence; several already fill each step
        if (params["parallel"] or 1) > 1:
            from llmcli.errors import UsageError

            raise UsageError("--draft-model works one document at a time", hint="drop --parallel")
        return 1, False
    if params["parallel"] is not None:
        return params["parallel"], False
    return (min(4, inputs), True) if inputs > 1 else (1, True)


def lookup(params: dict[str, Any]) -> int:
    """Draft tokens per step for speculative decoding (0: off); --draft-model turns it on."""
    return params["draft_tokens"] if params["speculative"] or params.get("draft_model") else 0


Offline = Annotated[
    bool,
    typer.Option(
        "--offline", help="Never touch the network; use downloaded models only. [env: HF_HUB_OFFLINE=1]"
    ),
]


SETTINGS_KEYS = (
    "model",
    "ctx",
    "threads",
    "gpu_layers",
    "flash_attn",
    "cache_type_k",
    "cache_type_v",
    "backend",
)
SAMPLING_KEYS = (
    "greedy",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repeat_penalty",
    "seed",
    "max_tokens",
    "stop",
    "ignore_eos",
)


def settings(params: dict[str, Any]) -> Any:
    """Settings from defaults, config file and environment, overridden by the command's flags.

    A command without a --backend option (bench, perplexity) always runs the model locally.
    """
    from dataclasses import replace

    from llmcli.config import load_settings

    merged = load_settings().merged(**{k: params[k] for k in SETTINGS_KEYS if k in params})
    return merged if "backend" in params else replace(merged, backend=None)


def sampling(params: dict[str, Any]) -> Any:
    """A validated SamplingConfig from the command's sampling flags (None: not given)."""
    from llmcli.sampling import SamplingConfig

    options = {k: params[k] for k in SAMPLING_KEYS if k in params}
    return SamplingConfig.from_options(**{**options, "stop": options.get("stop") or ()})
