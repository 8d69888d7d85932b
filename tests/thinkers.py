"""Program models that think: for each shared reasoning template, a model that thinks when its prompt lets it.

The model has the Qwen2 tokenizer with the template's markers added as tokens, and the template
itself. Its program (tests/tinymodel.py: the next token depends on the current one only) follows
the prompts the template renders: after the last token of the prompt with thinking on, it writes
its format's start marker (unless the template opened the block already), five thinking tokens,
the end marker and the answer; after the last token of the prompt with thinking off, the answer
at once. A budget's forced end marker leads to the answer too, since the end marker's tokens are
the program's own.

gpt-oss's harmony format cannot be programmed whole with one token of memory (`<|channel|>` is
followed by `analysis` and later by `final`): its model thinks and never answers on its own, so a
budget is what brings its answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from tinymodel import TEMPLATES, vocab_size, write_program_model

from llmcli.chat.templates import ChatTemplate
from llmcli.engine import Vocabulary
from llmcli.reasoning import ThinkFormat, ends_open, plan_for

THOUGHT = ["Hmm", " let", " me", " see", " now"]
ANSWER = [" Paris", "."]
EOS = 151643  # the Qwen2 tokenizer's <|endoftext|>
CONTROL, USER_DEFINED = 3, 4
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]

# Template file -> the tokens its markers need (Qwen2's tokenizer already has <|im_start|> and <|im_end|>).
MARKERS: dict[str, list[tuple[str, int]]] = {
    "Qwen-Qwen3-0.6B": [("<think>", USER_DEFINED), ("</think>", USER_DEFINED)],
    "Qwen3.5-4B": [("<think>", USER_DEFINED), ("</think>", USER_DEFINED)],
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": [
        ("<think>", USER_DEFINED),
        ("</think>", USER_DEFINED),
        ("<｜User｜>", CONTROL),
        ("<｜Assistant｜>", CONTROL),
    ],
    # Its "off" prompt ends in "</think>\n" and its "on" prompt in "assistant\n": one token tells them apart.
    "HuggingFaceTB-SmolLM3-3B": [
        ("<think>", USER_DEFINED),
        ("</think>", USER_DEFINED),
        ("</think>\n", CONTROL),
    ],
    "google-gemma-4-31B-it": [
        ("<|turn>", CONTROL),
        ("<turn|>", CONTROL),
        ("<|think|>", CONTROL),
        ("<|channel>", CONTROL),
        ("<channel|>", CONTROL),
    ],
    "openai-gpt-oss-120b": [
        ("<|start|>", CONTROL),
        ("<|end|>", CONTROL),
        ("<|message|>", CONTROL),
        ("<|channel|>", CONTROL),
        ("<|return|>", CONTROL),
        ("<|call|>", CONTROL),  # with <|return|>, llama.cpp takes <|end|> off the end-of-generation tokens
    ],
}
TEMPLATE_NAMES = sorted(MARKERS)


@dataclass(frozen=True)
class Thinker:
    """A thinking program model and what it says."""

    path: Path
    template: ChatTemplate
    format: ThinkFormat
    answers: bool  # whether it ends its thinking by itself (harmony's does not)
    thought: str = "".join(THOUGHT)
    answer: str = "".join(ANSWER).strip()


def write_thinker(folder: Path, name: str, base: Vocabulary) -> Thinker:
    """The thinking model for the shared template `name` (a file stem in ../shared/templates).

    base: the Qwen2 vocabulary (loaded once), which tokenizes everything but the added markers.
    """
    source = (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")
    added = MARKERS[name]
    template = ChatTemplate(source, bos_token="", eos_token="<|endoftext|>")
    fmt = template.think_format
    assert fmt is not None, name
    marker_ids = {text: vocab_size("qwen2") + i for i, (text, _) in enumerate(added)}
    # As llama.cpp tokenizes: the added tokens first (the longest where they overlap), then the text between.
    splitter = re.compile("|".join(re.escape(m) for m in sorted(marker_ids, key=len, reverse=True)))

    def ids(text: str) -> list[int]:
        out: list[int] = []
        pos = 0
        for match in splitter.finditer(text):
            out += base.tokenize(text[pos : match.start()], add_special=False, parse_special=True)
            out.append(marker_ids[match.group()])
            pos = match.end()
        return out + base.tokenize(text[pos:], add_special=False, parse_special=True)

    def one(text: str) -> int:
        (token,) = ids(text)
        return token

    on, _ = plan_for(template.render(QUESTION, think="on"), fmt, "on", None)
    off, _ = plan_for(template.render(QUESTION, think="off"), fmt, "off", None)
    on_last, off_last = ids(on)[-1], ids(off)[-1]
    if fmt.name == "harmony":
        # <|message|> also ends the forced end (before the answer): spelled in plain tokens here, each once.
        start = [one("<|channel|>"), one("analysis"), *(one(p) for p in ("<", "|m", "essage", "|", ">"))]
    else:
        start = [] if ends_open(on, fmt) else ids(fmt.start)
    thought = [one(t) for t in THOUGHT]
    answer = [one(t) for t in ANSWER]
    end = [] if fmt.name == "harmony" else ids(fmt.end) + (ids(fmt.gap) if fmt.gap else [])
    chain = [on_last, *start, *thought, *end, *(answer if end else [])]
    steps = list(pairwise(chain))
    if off_last not in end:  # where the "off" prompt ends in the end marker, the chain goes on to the answer
        steps.append((off_last, answer[0]))
    program: dict[int, dict[int, float]] = {}
    for a, b in [*steps, *pairwise(answer)]:
        assert program.get(a, {b: 30.0}) == {b: 30.0}, f"{name}: token {a} would need two successors"
        program[a] = {b: 30.0}
    path = write_program_model(
        folder / f"{name}.gguf", program, vocab="qwen2", eos=EOS, chat_template=source, added_tokens=added
    )
    return Thinker(path, template, fmt, answers=fmt.name != "harmony")
