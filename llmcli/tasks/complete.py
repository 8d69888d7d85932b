"""`complete`: continue a prompt, streaming the text."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from llmcli.engine import Completion, Engine
from llmcli.errors import ContextOverflowError, UsageError
from llmcli.reasoning import ThinkFormat, Thinking, Thought, plan_for
from llmcli.sampling import SamplingConfig
from llmcli.text.documents import DocumentError, Source, collect_sources, read_document


def build_prompt(stdin_text: str | None, prompt: str | None, files: Sequence[FileText] = ()) -> str:
    """stdin first, then each file's block, then PROMPT, separated by blank lines; something must hold text.

    The newline that ends piped text (`echo ... |`) is dropped, so the model continues the text itself.
    """
    if stdin_text and stdin_text.endswith("\n"):
        stdin_text = stdin_text[:-2] if stdin_text.endswith("\r\n") else stdin_text[:-1]
    text = "\n\n".join(p for p in (stdin_text, with_files(files, prompt or "")) if p)
    if not text.strip():
        raise UsageError("the prompt is empty", hint="pass PROMPT or pipe text into stdin")
    return text


def complete(
    engine: Engine,
    prompt: str,
    sampling: SamplingConfig,
    emit: Callable[[str], None],
    *,
    think: tuple[ThinkFormat | None, Thinking] = (None, Thinking()),
    emit_thought: Callable[[str], None] = lambda _t: None,
    lookup: int = 0,
) -> Completion:
    """Generate after prompt, passing each answer piece to emit; Ctrl-C ends it as 'interrupted'.

    think: a thinking model's format and settings. Its thinking goes to emit_thought, never to emit;
    `off` closes thinking at once (a raw prompt has no template switch). lookup: prompt-lookup draft
    tokens per step (0: plain decoding; each token is chosen as plain decoding would, up to near ties).
    """
    fmt, thinking = think
    if sampling.constraint is not None:
        fmt = None  # the grammar rules thinking out from the first token: the prompt stays the user's
    sent, plan = plan_for(prompt, fmt, thinking.mode, thinking.budget)
    tokens: str | list[int] = sent
    if sent != prompt and not engine.takes_messages:
        # The text is the user's (special tokens spelled in it stay text); the closed block is markers.
        closed = sent[len(prompt) :]
        tokens = engine.tokenize(prompt) + engine.tokenize(closed, add_special=False, parse_special=True)
    generation = engine.generate(tokens, replace(sampling, think=plan) if plan else sampling, lookup=lookup)
    try:
        for piece in generation:
            (emit_thought if isinstance(piece, Thought) else emit)(piece)
    except KeyboardInterrupt:
        generation.close()
    return generation.completion()


# --- files in prompts (`-f/--file` of complete and chat, `/read` in the chat REPL) ---------------


@dataclass(frozen=True)
class FileText:
    """A file read for a prompt: its name as given, its block (see file_block), and the block's tokens."""

    name: str
    block: str
    tokens: int = 0


def file_block(name: str, text: str) -> str:
    """A header line `File: NAME`, then the text in a code fence longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence, body = "`" * (longest + 1), text.strip("\n")
    return f"File: {name}\n{fence}\n{body}\n{fence}"


def read_files(args: Sequence[str], stdin: Callable[[], bytes] | None = None) -> list[FileText]:
    """The files that paths, globs and folders name (`-`: stdin, read with stdin()), each once, in order.

    Text, Markdown, HTML and PDF are read by llmcli.text.documents. A missing, unreadable, binary,
    non-UTF-8 or empty file, a glob that matches nothing, and `-` without stdin are UsageErrors.
    """
    found: list[FileText] = []
    seen: set[Path | None] = set()  # None: stdin
    for arg in args:
        if arg == "-" and stdin is None:
            raise UsageError("`-` (standard input) cannot be read here", hint="name a file")
        for source in [Source.stdin()] if arg == "-" else _sources(arg):
            key = source.path.resolve() if source.path is not None else None
            if key in seen:
                continue
            seen.add(key)
            try:
                text = read_document(source, stdin=stdin() if stdin and source.path is None else None)
            except DocumentError as exc:
                raise UsageError(exc.message, hint=exc.hint) from None
            found.append(FileText(source.display, file_block(source.display, text)))
    return found


def _sources(arg: str) -> list[Source]:
    try:
        return collect_sources([arg])
    except UsageError:
        if re.search(r"[*?[]", arg) and not Path(arg).exists():
            raise UsageError(f"no files match {arg}") from None
        raise


def with_files(files: Sequence[FileText], text: str) -> str:
    """The files' blocks, then text, separated by blank lines."""
    return "\n\n".join([*(f.block for f in files), *([text] if text else [])])


def count_tokens(engine: Engine, files: Sequence[FileText]) -> list[FileText]:
    """files with the tokens each block takes in engine's vocabulary."""
    return [replace(f, tokens=len(engine.tokenize(f.block, add_special=False))) for f in files]


def read_note(file: FileText) -> str:
    """The dim line that says a file was read: `read notes/a.md (1,234 tokens)`."""
    return f"read {file.name} ({file.tokens:,} tokens)"


def files_overflow(
    exc: ContextOverflowError,
    files: Sequence[FileText],
    hint: str = "read fewer or smaller files, or raise --ctx",
) -> ContextOverflowError:
    """exc, naming each file's size: the files are what a prompt with them usually overflows with."""
    sizes = ", ".join(f"{f.name} {f.tokens:,} tokens" for f in files)
    return ContextOverflowError(f"{exc.message}; files: {sizes}", hint=hint)
