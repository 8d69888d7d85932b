"""Presentation on stderr: errors, stats footers and notes. Pure text; styled only on a color terminal."""

from __future__ import annotations

from llmcli.engine import Completion, Stats
from llmcli.environment import Environment
from llmcli.errors import LlmcliError

DIM, RED, RESET = "\x1b[2m", "\x1b[31m", "\x1b[0m"


def error_line(err: LlmcliError) -> str:
    """One line: the problem, then what to do about it."""
    return f"error: {err.message}" + (f" ({err.hint})" if err.hint else "")


def stats_line(stats: Stats) -> str:
    """A one-line summary of a generation's speed."""
    evaluated = stats.prompt_tokens - stats.cached_tokens
    prompt = f"prompt {stats.prompt_tokens} tokens"
    if stats.cached_tokens:
        prompt += f" ({stats.cached_tokens} cached)"
    if evaluated and stats.prompt_ms:
        prompt += f", {stats.prompt_tps:.1f} t/s"
    return (
        f"{prompt} · generated {stats.generated_tokens} tokens, {stats.decode_tps:.1f} t/s"
        f" · first token {stats.ttft_ms:.0f} ms"
    )


def note(env: Environment, text: str, *, error: bool = False) -> None:
    """A line for the user on stderr (dim, or red for errors, on a color terminal)."""
    if env.color:
        text = f"{RED if error else DIM}{text}{RESET}"
    env.stderr.write(text + "\n")
    env.stderr.flush()


def finish_note(completion: Completion) -> str | None:
    """Why generation ended, when the user may not expect it."""
    if completion.finish_reason == "context":
        return "stopped: the context window is full (raise --ctx for longer output)"
    return None
