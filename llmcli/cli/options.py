"""Options shared by commands: each declared once, gathered into typed groups, and `inject`, which
lets a command take those groups (and the app's Environment) as parameters that typer can read.

Typer builds a command's options from its signature. `inject` gives it one where each parameter
annotated with an OptionGroup stands for the group's fields, at its place, and on each call packs
those values into the group the command receives: `Annotated[SamplingOptions, Omit("stop")]` leaves
an option out (it keeps its default), `Override(threads=...)` declares one differently. The groups
turn their values into what the core takes (Settings, SamplingConfig, Thinking, a loaded model).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    ClassVar,
    TypeVar,
    get_args,
    get_origin,
    get_type_hints,
)

import typer

from llmcli.ui.environment import Environment

if TYPE_CHECKING:
    from llmcli.config import Settings
    from llmcli.reasoning import Thinking
    from llmcli.sampling import SamplingConfig
    from llmcli.structured import Schema
    from llmcli.tasks.runtime import LoadedModel

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


def _complete_cache_type() -> list[str]:
    return ["f16", "q8_0", "q4_0"]


def _complete_think() -> list[tuple[str, str]]:
    return [("on", "think before answering"), ("off", "answer at once"), ("auto", "the model's default")]


def _in(panel: str) -> Callable[..., Any]:
    """typer.Option for the options of a help panel (rich help shows them under its title)."""
    return functools.partial(typer.Option, rich_help_panel=panel)


_sampling, _speed, _thinking, _structure = (
    _in("Sampling"),
    _in("Speed"),
    _in("Thinking"),
    _in("Structured output"),
)

# --- the options ---------------------------------------------------------------------------------

_MODEL_HELP = "GGUF file to run. [env: LLMCLI_MODEL]"
Model = Annotated[
    str | None,
    typer.Option("-m", "--model", help=_MODEL_HELP, show_default=False, autocompletion=complete_model),
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
_KEYS_HELP = "KV cache type of keys: f16, q8_0 (half the memory) or q4_0 (about a quarter)."
_VALUES_HELP = "KV cache type of values: f16, q8_0 or q4_0 (quantized values turn flash attention on)."
CacheTypeK = Annotated[
    str | None,
    typer.Option(
        "--cache-type-k", "-ctk", help=_KEYS_HELP, show_default="f16", autocompletion=_complete_cache_type
    ),
]
CacheTypeV = Annotated[
    str | None,
    typer.Option(
        "--cache-type-v", "-ctv", help=_VALUES_HELP, show_default="f16", autocompletion=_complete_cache_type
    ),
]
Offline = Annotated[
    bool,
    typer.Option(
        "--offline", help="Never touch the network; use downloaded models only. [env: HF_HUB_OFFLINE=1]"
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Verbose = Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's own log on stderr.")]

Greedy = Annotated[bool, _sampling("--greedy", help="Always pick the most likely token (argmax).")]
Temperature = Annotated[
    float | None,
    _sampling("-t", "--temperature", help="Softmax temperature; 0 is greedy.", show_default="0.8"),
]
TopK = Annotated[
    int | None,
    _sampling("--top-k", help="Sample from the K most likely tokens (0: off).", show_default=False),
]
_TOP_P_HELP = "Nucleus: sample from the smallest set of tokens with probability >= P."
TopP = Annotated[float | None, _sampling("--top-p", help=_TOP_P_HELP, show_default=False)]
_MIN_P_HELP = "Drop tokens less likely than P times the most likely one."
MinP = Annotated[float | None, _sampling("--min-p", help=_MIN_P_HELP, show_default=False)]
RepeatPenalty = Annotated[
    float | None,
    _sampling("--repeat-penalty", help="Penalize tokens seen in the last 64 (1.0: off).", show_default="1.0"),
]
Seed = Annotated[
    int | None,
    _sampling("--seed", help="Seed for reproducible sampling.", show_default="fresh randomness every run"),
]
MaxTokens = Annotated[
    int | None,
    _sampling(
        "-n",
        "--max-tokens",
        help="Stop after N tokens.",
        show_default="until the model ends or the context is full",
    ),
]
Stop = Annotated[
    list[str] | None, _sampling("--stop", help="Stop before this text (repeatable).", show_default=False)
]
_IGNORE_EOS_HELP = "Keep generating past end-of-generation tokens (for benchmarks)."
IgnoreEos = Annotated[bool, _sampling("--ignore-eos", help=_IGNORE_EOS_HELP)]

SAMPLING_HELP = (
    "Sampling: with none of --top-k/--top-p/--min-p given, top-p 0.95 and min-p 0.05 apply; "
    "any of them given alone means exactly that method (plus temperature)."
)

_THINK_HELP = (
    "A thinking model thinks before it answers (on), answers at once (off), or follows its template "
    "(auto). [env: LLMCLI_THINK]"
)
Think = Annotated[
    str | None, _thinking("--think", help=_THINK_HELP, show_default="auto", autocompletion=_complete_think)
]
ThinkOff = Annotated[
    str | None,
    _thinking(
        "--think",
        help=_THINK_HELP,
        show_default="off: thinking rarely helps this task and costs its tokens",
        autocompletion=_complete_think,
    ),
]
ReasoningBudget = Annotated[
    int | None,
    _thinking(
        "--reasoning-budget",
        help="Thinking tokens at most; then thinking is ended and the answer follows (0: none). "
        "[env: LLMCLI_REASONING_BUDGET]",
        show_default="no limit",
    ),
]
_HIDE_HELP = "Do not show the thinking (on a terminal it streams dimmed on stderr; stdout never gets it)."
HideThinking = Annotated[bool, _thinking("--hide-thinking", help=_HIDE_HELP)]

SchemaOption = Annotated[
    str | None,
    _structure(
        "--schema",
        help="Output must be JSON under this JSON Schema: a .json file, inline JSON, `object` (any JSON "
        "object), or fields such as 'title, date: date, people: list, amount: number'.",
        show_default=False,
    ),
]
_GRAMMAR_HELP = "Output must follow this GBNF grammar file (llama.cpp's format; root is the start rule)."
GrammarOption = Annotated[Path | None, _structure("--grammar", help=_GRAMMAR_HELP, show_default=False)]

PromptCacheFlag = Annotated[
    bool,
    _speed(
        "--prompt-cache",
        help="Save the KV state of long prompts on disk and restore it next time (LRU, bounded).",
    ),
]
_SPECULATIVE_HELP = (
    "Draft tokens by looking up the context's last words earlier in it, verified in one batch."
)
Speculative = Annotated[bool, _speed("--speculative/--no-speculative", help=_SPECULATIVE_HELP)]
DraftTokens = Annotated[
    int, _speed("--draft-tokens", min=1, max=64, help="Most tokens drafted per step (adaptive).")
]
DraftModel = Annotated[
    str | None,
    _speed(
        "--draft-model",
        help="A small model of the same tokenizer that drafts for -m (instead of prompt lookup); "
        "the output is unchanged. One document at a time only.",
        show_default=False,
        autocompletion=complete_model,
    ),
]
Parallel = Annotated[
    int | None,
    _speed(
        "--parallel",
        min=1,
        max=64,
        help="Documents and chunks decoded together in one context; --ctx is split between them.",
        show_default="up to 4 for several inputs, keeping 1,024 context tokens each; 1 for one input",
    ),
]

OutDirOption = functools.partial(typer.Option, "--out-dir", show_default=False)  # each says what it writes
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
DocumentPaths = Annotated[
    list[str] | None,
    typer.Argument(
        help="Files, folders (recursive) or glob patterns; stdin when none or `-`.", show_default=False
    ),
]
PlanVerbose = Annotated[bool, typer.Option("--verbose", help="Show the chunk plan of each document.")]
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

# --- groups --------------------------------------------------------------------------------------


class Omit:
    """In `Annotated[Group, Omit("name")]`: the command has no such option (the group keeps its default)."""

    def __init__(self, *names: str) -> None:
        self.names = frozenset(names)


class Override:
    """In `Annotated[Group, Override(name=Alias)]`: the command declares that option as Alias instead."""

    def __init__(self, **options: Any) -> None:
        self.options: Mapping[str, Any] = options


@dataclass(frozen=True)
class OptionGroup:
    """Options that commands share, as a dataclass whose fields are typer options (see `inject`)."""

    omitted: frozenset[str] = field(default=frozenset(), kw_only=True, repr=False)

    @classmethod
    def option_fields(cls) -> list[Field[Any]]:
        return [f for f in fields(cls) if f.name != "omitted"]

    def values(self) -> dict[str, Any]:
        """Each option's value by name (an omitted one's is its default)."""
        return {f.name: getattr(self, f.name) for f in self.option_fields()}

    def offers(self, name: str) -> bool:
        """Whether the command has this option."""
        return name not in self.omitted


@dataclass(frozen=True)
class RuntimeOptions(OptionGroup):
    """How llama.cpp runs a model here: context, threads, GPU offload, flash attention, KV cache."""

    ctx: Ctx = None
    threads: Threads = None
    gpu_layers: GpuLayers = None
    flash_attn: FlashAttn = None
    cache_type_k: CacheTypeK = None
    cache_type_v: CacheTypeV = None


@dataclass(frozen=True)
class ModelOptions(OptionGroup):
    """-m, and --backend: the server that runs it (a command without --backend runs it here)."""

    model: Model = None
    backend: Backend = None

    def settings(self, runtime: RuntimeOptions, environ: Mapping[str, str]) -> Settings:
        """Settings from defaults, config file and environ, overridden by the command's flags."""
        from llmcli.config import load_settings

        merged = load_settings(environ=environ).merged(
            model=self.model, backend=self.backend, **runtime.values()
        )
        return merged if self.offers("backend") else replace(merged, backend=None)


@dataclass(frozen=True)
class ModelsOptions(OptionGroup):
    """-m repeated to compare models, and --backend."""

    models: Models = None
    backend: Backend = None

    def each(self) -> list[ModelOptions]:
        """One ModelOptions per -m, in order; the configured default model when none is given."""
        names: list[str | None] = [*self.models] if self.models else [None]
        return [ModelOptions(name, self.backend, omitted=self.omitted) for name in names]


@dataclass(frozen=True)
class SamplingOptions(OptionGroup):
    """How the next token is chosen, and when generation stops."""

    greedy: Greedy = False
    temperature: Temperature = None
    top_k: TopK = None
    top_p: TopP = None
    min_p: MinP = None
    repeat_penalty: RepeatPenalty = None
    seed: Seed = None
    max_tokens: MaxTokens = None
    stop: Stop = None
    ignore_eos: IgnoreEos = False

    def config(self, *, greedy_by_default: bool = False) -> SamplingConfig:
        """A validated SamplingConfig; greedy_by_default: greedy unless --temperature is given."""
        from llmcli.sampling import SamplingConfig

        values = self.values()
        values["greedy"] = self.greedy or (greedy_by_default and self.temperature is None)
        return SamplingConfig.from_options(**{**values, "stop": self.stop or ()})


@dataclass(frozen=True)
class ThinkingOptions(OptionGroup):
    """What a thinking model does before it answers: --think, --reasoning-budget, --hide-thinking."""

    think: Think = None
    reasoning_budget: ReasoningBudget = None
    hide_thinking: HideThinking = False
    default: ClassVar[str] = "auto"

    @property
    def asked(self) -> bool:
        """Whether --think or --reasoning-budget was given."""
        return self.think is not None or self.reasoning_budget is not None

    def resolve(self, environ: Mapping[str, str]) -> Thinking:
        """--think and --reasoning-budget over the config file and LLMCLI_THINK/LLMCLI_REASONING_BUDGET."""
        from llmcli.config import load_settings
        from llmcli.reasoning import Thinking

        config = load_settings(environ=environ)
        budget = config.reasoning_budget if self.reasoning_budget is None else self.reasoning_budget
        return Thinking.parse(self.think or config.think or self.default, budget)


@dataclass(frozen=True)
class TaskThinking(ThinkingOptions):
    """Thinking for summaries, translations and evaluations, where it rarely helps: off unless asked."""

    think: ThinkOff = None
    default: ClassVar[str] = "off"


def schema_constraint(schema: str) -> Schema:
    """The Schema a --schema value asks for: a .json file, inline JSON, `object`, or fields."""
    from llmcli.engine.grammar import compile_schema
    from llmcli.structured import ANY_OBJECT, load_schema

    return compile_schema(ANY_OBJECT if schema.strip() == "object" else load_schema(schema))


@dataclass(frozen=True)
class StructuredOptions(OptionGroup):
    """--schema and --grammar: output constrained while it is generated."""

    schema: SchemaOption = None
    grammar: GrammarOption = None

    def constraint(self) -> Schema | None:
        """The Schema (grammar and JSON Schema) that --schema or --grammar asks for, or None."""
        from llmcli.errors import UsageError
        from llmcli.structured import Schema, read_grammar

        if self.schema is not None and self.grammar is not None:
            raise UsageError("give --schema or --grammar, not both")
        if self.grammar is not None:
            return Schema(None, read_grammar(self.grammar))
        return None if self.schema is None else schema_constraint(self.schema)


@dataclass(frozen=True)
class LoadOptions(OptionGroup):
    """How the model is loaded and decoded: the speed options, and --offline."""

    prompt_cache: PromptCacheFlag = False
    speculative: Speculative = True
    draft_tokens: DraftTokens = 8
    draft_model: DraftModel = None
    parallel: Parallel = None
    offline: Offline = False

    def lookup(self) -> int:
        """Draft tokens per step for speculative decoding (0: off); --draft-model turns it on."""
        return self.draft_tokens if self.speculative or self.draft_model else 0

    def workers(self, inputs: int) -> tuple[int, bool]:
        """Sequences to decode together for this many inputs, and whether that was chosen automatically."""
        if self.draft_model:  # it drafts for one sequence; several sequences draft by prompt lookup
            if (self.parallel or 1) > 1:
                from llmcli.errors import UsageError

                raise UsageError("--draft-model works one document at a time", hint="drop --parallel")
            return 1, False
        if self.parallel is not None:
            return self.parallel, False
        return (min(4, inputs), True) if inputs > 1 else (1, True)

    def load(
        self,
        env: Environment,
        settings: Settings,
        *,
        inputs: int = 1,
        verbose: bool = False,
        meter: Callable[[int, int], None] | None = None,
    ) -> LoadedModel:
        """The settings' model, downloading it with a progress bar first if need be.

        inputs: documents to run, for the sequences decoded together; verbose: llama.cpp's own log;
        meter: told (evaluated, total) while a long prompt is evaluated (render.PromptMeter shows it).
        """
        from llmcli.tasks.runtime import load_model
        from llmcli.ui.render import DownloadBar

        workers, auto = self.workers(inputs)
        return load_model(
            settings,
            verbose=verbose,
            offline=self.offline,
            progress=DownloadBar(env),
            prompt_cache=self.prompt_cache,
            parallel=workers,
            auto_parallel=auto,
            draft_model=self.draft_model,
            prompt_meter=meter,
            environ=env.environ,
        )


@dataclass(frozen=True)
class BatchOptions(OptionGroup):
    """What summarize, translate and extract share for batches: --jsonl, --force, --prompt-file."""

    jsonl: Jsonl = None
    force: Force = False
    prompt_file: PromptFile = None

    def prompts(self) -> dict[str, str]:
        """The built-in prompts, with --prompt-file's overriding them."""
        from llmcli.text.prompts import load_prompts

        return load_prompts(self.prompt_file)


# The variants that several commands take.
TaskSampling = Annotated[SamplingOptions, Omit("stop", "ignore_eos")]
TaskThinkingOptions = Annotated[TaskThinking, Omit("hide_thinking")]
InteractiveLoad = Annotated[LoadOptions, Omit("draft_model", "parallel")]
BatchLoad = Annotated[LoadOptions, Omit("prompt_cache")]


# --- attaching groups to commands ----------------------------------------------------------------


R = TypeVar("R")
_CONTEXT = "click_context"  # the parameter through which typer hands a wrapper the click context


_HINTS: dict[type[OptionGroup], dict[str, Any]] = {}


def _group_hints(group: type[OptionGroup]) -> dict[str, Any]:
    """A group's resolved field types, cached: a command's groups are walked once per option."""
    if group not in _HINTS:
        _HINTS[group] = get_type_hints(group, include_extras=True)
    return _HINTS[group]


@dataclass(frozen=True)
class _Placed:
    """A group parameter of a command: its name, the group, and what the command leaves out or changes.

    A group may hold groups; their options are shown in its place, and Omit/Override name options at
    any depth (a command's option names are unique).
    """

    name: str
    group: type[OptionGroup]
    omit: frozenset[str]
    override: Mapping[str, Any]

    @classmethod
    def of(
        cls,
        name: str,
        hint: Any,
        omit: frozenset[str] = frozenset(),
        override: Mapping[str, Any] | None = None,
    ) -> _Placed | None:
        base, marks = (get_args(hint)[0], hint.__metadata__) if get_origin(hint) is Annotated else (hint, ())
        if not (isinstance(base, type) and issubclass(base, OptionGroup)):
            return None
        named: frozenset[str] = frozenset().union(*(m.names for m in marks if isinstance(m, Omit)))
        changed = {k: v for m in marks if isinstance(m, Override) for k, v in m.options.items()}
        placed = cls(name, base, omit | named, {**(override or {}), **changed})
        if unknown := (named | changed.keys()) - {p.name for p in placed.parameters(everything=True)}:
            raise TypeError(f"{base.__name__} has no options {sorted(unknown)}")
        return placed

    def _members(self) -> Iterator[tuple[Field[Any], Any, _Placed | None]]:
        """Each field, its type hint, and where the field is itself a group, that group placed."""
        hints = _group_hints(self.group)
        for f in self.group.option_fields():
            yield f, hints[f.name], _Placed.of(f.name, hints[f.name], self.omit, self.override)

    def parameters(self, *, everything: bool = False) -> list[inspect.Parameter]:
        """The group's options as keyword parameters, in the group's order (everything: omitted ones too)."""
        shown: list[inspect.Parameter] = []
        for f, hint, inner in self._members():
            if inner is not None:
                shown += inner.parameters(everything=everything)
            elif everything or f.name not in self.omit:
                annotation = self.override.get(f.name, hint)
                shown.append(
                    inspect.Parameter(
                        f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=annotation
                    )
                )
        return shown

    def pack(self, values: dict[str, Any]) -> OptionGroup:
        """The group from the options' values, which are taken out of values."""
        given = {
            f.name: inner.pack(values) if inner is not None else values.pop(f.name)
            for f, _hint, inner in self._members()
            if inner is not None or f.name not in self.omit
        }
        return self.group(**given, omitted=self.omit)


def inject(command: Callable[..., R]) -> Callable[..., R]:
    """The command with its option groups and Environment filled in, as typer can call it.

    Each parameter annotated with an OptionGroup (or `Annotated[Group, Omit(...), Override(...)]`)
    shows typer the group's options in its place; a parameter annotated Environment gets the app's
    (the click context's obj, see llmcli.cli.app), so that tests can run commands in-process.
    """
    hints = get_type_hints(command, include_extras=True)
    shown: list[inspect.Parameter] = []
    groups: list[_Placed] = []
    env_name = None
    for param in inspect.signature(command).parameters.values():
        hint = hints.get(param.name, param.annotation)
        placed = _Placed.of(param.name, hint)
        if placed is not None:
            groups.append(placed)
            shown += placed.parameters()
        elif hint is Environment:
            env_name = param.name
        else:
            shown.append(param.replace(annotation=hint, kind=inspect.Parameter.KEYWORD_ONLY))
    if env_name is not None:
        shown.append(inspect.Parameter(_CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
    names = [p.name for p in shown] + [flag for p in shown for flag in _flags(p.annotation)]
    if twice := {n for n in names if names.count(n) > 1}:
        raise TypeError(f"{command.__name__}: options named twice: {sorted(twice)}")

    @functools.wraps(command)
    def run(**values: Any) -> R:  # typer passes every option by name
        packed = {g.name: g.pack(values) for g in groups}
        if env_name is not None:
            context = values.pop(_CONTEXT)
            values[env_name] = context.find_object(Environment) or Environment.from_system()
        return command(**values, **packed)

    run.__annotations__ = {p.name: p.annotation for p in shown}
    setattr(run, "__signature__", inspect.Signature(shown))  # noqa: B010  (typer reads it)
    return run


def _flags(hint: Any) -> list[str]:
    """The command-line flags an `Annotated[..., typer.Option(...)]` declares."""
    decls: list[str] = []
    for info in getattr(hint, "__metadata__", ()):
        if isinstance(info, typer.models.OptionInfo):
            # In Annotated, Option's first positional argument (a flag) lands in `default`.
            given = [info.default] if isinstance(info.default, str) else []
            decls += [flag for decl in [*given, *(info.param_decls or ())] for flag in decl.split("/")]
    return [flag for flag in decls if flag.startswith("-")]
