"""`complete`: continue a prompt, streaming the text."""

from __future__ import annotations

from collections.abc import Callable

from llmcli.engine import Completion, Engine
from llmcli.errors import UsageError
from llmcli.sampling import SamplingConfig


def build_prompt(stdin_text: str | None, prompt: str | None) -> str:
    """stdin first, then PROMPT, separated by a blank line; at least one must hold text.

    The newline that ends piped text (`echo ... |`) is dropped, so the model continues the text itself.
    """
    if stdin_text and stdin_text.endswith("\n"):
        stdin_text = stdin_text[:-2] if stdin_text.endswith("\r\n") else stdin_text[:-1]
    parts = [p for p in (stdin_text, prompt) if p]
    if not parts or not "".join(parts).strip():
        raise UsageError("the prompt is empty", hint="pass PROMPT or pipe text into stdin")
    if len(parts) == 2:
        return parts[0] + "\n\n" + parts[1]
    return parts[0]


def complete(
    engine: Engine, prompt: str, sampling: SamplingConfig, emit: Callable[[str], None]
) -> Completion:
    """Generate after prompt, passing each piece to emit; Ctrl-C ends it as 'interrupted'."""
    generation = engine.generate(prompt, sampling)
    try:
        for piece in generation:
            emit(piece)
    except KeyboardInterrupt:
        generation.close()
    return generation.completion()
