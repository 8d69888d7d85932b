"""Named prompt templates for summarize and translate, in one place users can read and override.

The fixed instructions go in the system message: they are the same for every chunk and file, so
their KV is computed once and reused. The document comes next, and a short reminder of the task
follows it, because small instruct models do better with the input before the instructions.
Override with `--prompt-file FILE` (TOML with any of the keys below).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from llmcli.errors import UsageError

PROMPTS: dict[str, str] = {
    "summarize_system": (
        "You write faithful summaries of documents. Use only facts from the document. "
        "Write the summary directly: no introduction, no comments about the document or the task."
    ),
    "summarize": "{document}\n\n---\nSummarize the text above{focus}. {shape}{language}",
    "combine": (
        "{document}\n\n---\nThe text above is a series of partial summaries of consecutive parts of one "
        "document. Combine them into one summary of the whole document{focus}. {shape}{language}"
    ),
    "refine": (
        "Summary so far:\n{summary}\n\nNext part of the document:\n{document}\n\n---\nRewrite the summary so "
        "it also covers the next part{focus}. {shape}{language}"
    ),
    "translate_system": (
        "You are a professional translator into {target}. Reply with the translation only: no "
        "introduction, no quotation marks around it, no notes or explanations. Keep the line breaks, the "
        "Markdown markup, numbers, names and URLs; copy text inside backticks unchanged."
    ),
    "translate": "{document}\n\n---\nTranslate the text above{source} into {target}.{glossary} "
    "Reply with the {target} translation only.",
}

LENGTH_WORDS = {"short": 50, "medium": 120, "long": 250}
STYLES = {
    "paragraph": "Write about {words} words as flowing prose.",
    "bullets": "Write about {words} words as a list of bullet points starting with '- '.",
    "tldr": "Write one or two sentences (at most {words} words).",
}


def load_prompts(path: Path | None) -> dict[str, str]:
    """The built-in prompts, with a user's TOML file overriding any of them."""
    prompts = dict(PROMPTS)
    if path is None:
        return prompts
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the prompt file {path}: {exc}") from None
    for key, value in data.items():
        if key not in PROMPTS:
            raise UsageError(f"{path}: unknown prompt {key!r}", hint=f"known: {', '.join(PROMPTS)}")
        if not isinstance(value, str):
            raise UsageError(f"{path}: prompt {key!r} must be a string")
        prompts[key] = value
    return prompts
