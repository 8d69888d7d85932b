"""Thinking models: thinking on, off or budgeted, split from the answer, never on stdout.

Each shared reasoning template gets a program model that thinks when its prompt lets it
(tests/thinkers.py); the installed command runs it end to end.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LLMCLI
from thinkers import QUESTION, TEMPLATE_NAMES, THOUGHT, Thinker
from tinymodel import TEMPLATES

from llmcli.chat.conversation import Chat
from llmcli.chat.sessions import SessionRecord, to_markdown
from llmcli.chat.templates import ChatTemplate
from llmcli.engine import EngineOptions, LocalEngine
from llmcli.reasoning import FORMATS, GEMMA4, HARMONY, THINK, Thought, ThoughtSplitter, ends_open, plan_for
from llmcli.sampling import SamplingConfig

Run = Callable[..., subprocess.CompletedProcess[str]]
GREEDY = ("--greedy", "-n", "40")

# --- the splitter ---------------------------------------------------------------------------------

STREAMS = {
    THINK: "<think>\nPlan: add.</think>\n\n2 + 2 = 4",
    HARMONY: "<|channel|>analysis<|message|>Plan: add.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4",
    GEMMA4: "<|channel>thought\nPlan: add.<channel|>2 + 2 = 4",
}


def split(fmt: object, pieces: list[str], thinking: bool = False) -> tuple[str, str]:
    splitter = ThoughtSplitter(fmt, thinking=thinking)  # type: ignore[arg-type]
    out = [p for piece in pieces for p in splitter.feed(piece)] + splitter.finish()
    return "".join(p for p in out if isinstance(p, Thought)), "".join(
        p for p in out if not isinstance(p, Thought)
    )


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("chunking", ["whole", "chars"])
def test_the_splitter_takes_markers_apart_however_they_stream(fmt: object, chunking: str) -> None:
    text = STREAMS[fmt]  # type: ignore[index]
    pieces = [text] if chunking == "whole" else list(text)
    assert split(fmt, pieces) == ("Plan: add.", "2 + 2 = 4")


def test_the_splitter_without_thinking_and_with_it_opened_by_the_prompt() -> None:
    assert split(THINK, list("<b>bold</b> and <thin")) == ("", "<b>bold</b> and <thin")
    assert split(THINK, ["Plan", "</thi", "nk>\n\nDone"], thinking=True) == ("Plan", "Done")
    assert split(HARMONY, ["<|channel|>final<|message|>Done"]) == ("", "Done")
    assert split(THINK, ["<think>cut sh"]) == ("cut sh", "")  # -n ran out while thinking


# --- the prompt side: every shared reasoning template -------------------------------------------


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_off_closes_thinking_in_the_prompt_and_on_leaves_it_to_the_model(name: str) -> None:
    template = ChatTemplate((TEMPLATES / f"{name}.jinja").read_text(), eos_token="<|endoftext|>")
    fmt = template.think_format
    assert fmt is not None
    off, plan = plan_for(template.render(QUESTION, think="off"), fmt, "off", None)
    assert plan is not None and plan.budget == 0 and not plan.open
    assert off.rstrip().endswith(fmt.end + fmt.answer)  # the template's own switch, or the block added
    on, plan = plan_for(template.render(QUESTION, think="on"), fmt, "on", 7)
    assert plan is not None and plan.budget == 7 and plan.open == ends_open(on, fmt)
    assert not on.rstrip().endswith(fmt.end + fmt.answer)


# --- the installed command, per template ----------------------------------------------------------


def on_prompt(t: Thinker) -> str:
    """The template's prompt with thinking on: what `complete` continues as chat would."""
    return t.template.render(QUESTION, think="on")


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_think_off_on_and_budget_through_complete(
    run_cli: Run, thinker: Callable[[str], Thinker], name: str
) -> None:
    t = thinker(name)
    runs = {
        mode: run_cli("complete", "-m", str(t.path), *GREEDY, *flags, "--json", on_prompt(t))
        for mode, flags in {
            "off": ["--think", "off"],
            "on": ["--think", "on"],
            "budget": ["--reasoning-budget", "3"],
        }.items()
    }
    out = {mode: json.loads(r.stdout) for mode, r in runs.items() if r.returncode == 0}
    assert set(out) == set(runs), {m: r.stderr for m, r in runs.items()}
    assert (out["off"]["text"], out["off"]["reasoning"], out["off"]["reasoning_tokens"]) == (t.answer, "", 0)
    if t.answers:
        assert (out["on"]["text"], out["on"]["reasoning"]) == (t.answer, t.thought)
        assert out["on"]["reasoning_tokens"] == len(THOUGHT)
    else:  # harmony's model never closes its analysis channel itself: thinking only, never in the answer
        assert (out["on"]["text"], out["on"]["reasoning"]) == ("", t.thought)
    assert (out["budget"]["text"], out["budget"]["reasoning_tokens"]) == (t.answer, 3)
    assert out["budget"]["reasoning"] == "".join(THOUGHT[:3])


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_chat_prints_only_the_answer_and_saves_the_thinking_apart(
    run_cli: Run, cli_env: dict[str, str], thinker: Callable[[str], Thinker], name: str
) -> None:
    t = thinker(name)
    budget = [] if t.answers else ["--reasoning-budget", "4"]
    for mode in ("on", "off"):
        result = run_cli(
            "chat", "-m", str(t.path), *GREEDY, "--think", mode, *budget, "--session", mode, input="Q?"
        )
        assert (result.returncode, result.stdout) == (0, t.answer + "\n"), result.stderr
        assert "Hmm" not in result.stderr  # not a terminal: the thinking is not shown
        saved = json.loads((Path(cli_env["LLMCLI_HOME"]) / "data" / "sessions" / f"{mode}.json").read_text())
        answer = saved["messages"][-1]
        assert answer["content"] == t.answer
        expected = (t.thought if t.answers else "".join(THOUGHT[:4])) if mode == "on" else None
        assert answer.get("reasoning_content") == expected


def test_on_a_terminal_the_thinking_streams_dimmed_on_stderr(
    cli_env: dict[str, str], thinker: Callable[[str], Thinker]
) -> None:
    t = thinker("Qwen-Qwen3-0.6B")
    env = {k: v for k, v in cli_env.items() if k != "NO_COLOR"}
    master, slave = pty.openpty()
    try:
        result = subprocess.run(
            [str(LLMCLI), "chat", "-m", str(t.path), *GREEDY, "--think", "on"],
            input="Q?",
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            env=env,
            timeout=120,
        )
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    assert (result.returncode, result.stdout) == (0, t.answer + "\n")
    assert b"\x1b[2mHmm" in shown and t.thought.encode() in shown.replace(b"\x1b[2m", b"").replace(
        b"\x1b[0m", b""
    )

    hidden = subprocess.run(
        [str(LLMCLI), "chat", "-m", str(t.path), *GREEDY, "--hide-thinking"],
        input="Q?",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (hidden.stdout, "Hmm" in hidden.stderr) == (t.answer + "\n", False)


def test_a_later_turn_drops_earlier_thinking_as_the_template_says_and_reuses_the_cache_exactly(
    thinker: Callable[[str], Thinker],
) -> None:
    t = thinker("Qwen-Qwen3-0.6B")
    with LocalEngine(t.path, EngineOptions(n_ctx=1024)) as engine:
        chat = Chat(engine, t.template, SamplingConfig(temperature=0.0, max_tokens=40))
        chat.think = "on"
        for _ in chat.ask("Q?"):
            pass
        assert chat.messages[-1] == {"role": "assistant", "content": t.answer, "reasoning_content": t.thought}
        pieces = list(chat.ask("And?"))
        assert "".join(p for p in pieces if not isinstance(p, Thought)) == t.answer
        prompt = t.template.render(chat.visible()[:-1], add_generation_prompt=True)
        assert t.thought not in prompt.split("And?")[0]  # Qwen3 keeps only the last answer's thinking
        assert chat.encode(prompt) == engine.tokenize(prompt, parse_special=True)
        assert chat.turn is not None and chat.turn.completion.stats.cached_tokens > 0


def test_exports_quote_the_thinking_in_a_collapsible_block() -> None:
    record = SessionRecord(
        "s",
        messages=[
            {"role": "user", "content": "Q?"},
            {"role": "assistant", "content": "Paris.", "reasoning_content": "Hmm.\nYes."},
        ],
    )
    text = to_markdown(record)
    assert "<details><summary>Thinking</summary>\n\n> Hmm.\n> Yes.\n\n</details>\n\nParis." in text


def test_batch_work_never_holds_thinking_and_a_model_that_never_answers_fails_the_file(
    run_cli: Run, thinker: Callable[[str], Thinker], tmp_path: Path
) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("Paris is the capital of France.\n")
    qwen, harmony = thinker("Qwen-Qwen3-0.6B"), thinker("openai-gpt-oss-120b")
    for mode in ("on", "off"):
        result = run_cli("summarize", str(doc), "-m", str(qwen.path), *GREEDY, "--think", mode)
        assert (result.returncode, result.stdout.strip()) == (0, qwen.answer), result.stderr
    result = run_cli("translate", str(doc), "--to", "de", "-m", str(qwen.path), *GREEDY, "--think", "on")
    assert (result.returncode, result.stdout.strip()) == (0, qwen.answer), result.stderr
    result = run_cli("summarize", str(doc), "-m", str(harmony.path), *GREEDY, "--think", "on")
    assert result.returncode == 1 and not result.stdout
    assert "done thinking but gave no answer after 5 thinking tokens" in result.stderr


def test_bad_thinking_settings_are_one_line_errors(run_cli: Run, thinker: Callable[[str], Thinker]) -> None:
    t = thinker("Qwen-Qwen3-0.6B")
    for flags, message in [
        (["--think", "maybe"], "think must be on, off or auto"),
        (["--reasoning-budget", "-1"], "reasoning-budget must be >= 0"),
    ]:
        result = run_cli("complete", "-m", str(t.path), *flags, "Q?")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    result = run_cli(
        "complete", "-m", str(t.path), *GREEDY, "--json", on_prompt(t), env={"LLMCLI_THINK": "off"}
    )
    assert json.loads(result.stdout)["reasoning"] == ""


def test_the_repl_switches_thinking_and_its_budget(thinker: Callable[[str], Thinker], tmp_path: Path) -> None:
    from test_chat import run_repl

    t = thinker("Qwen-Qwen3-0.6B")
    keys = (
        "/think on\rQ?\r/think off\rQ?\r/think on\r/set reasoning-budget 2\rQ?\r/show\r/think maybe\r/exit\r"
    )
    with LocalEngine(t.path, EngineOptions(n_ctx=1024)) as engine:
        repl, out, err = run_repl(
            engine, keys, tmp_path, sampling=SamplingConfig(temperature=0.0, max_tokens=40)
        )
    assert out == f"{t.answer}\n" * 3  # stdout: the answers only
    thoughts = [m.get("reasoning_content") for m in repl.chat.messages if m["role"] == "assistant"]
    assert thoughts == [t.thought, None, "".join(THOUGHT[:2])]
    assert "thinking: off" in err and "thinking  on, at most 2 tokens" in err
    assert "11 tokens (5 thinking) ·" in err  # the footer counts them apart: markers and answer are the rest
    assert "error: think must be on, off or auto" in err


def test_thinking_flags_on_a_model_that_does_not_think_say_so(run_cli: Run, stories: Path) -> None:
    result = run_cli("complete", "-m", str(stories), "--greedy", "-n", "4", "--think", "off", "Once")
    assert result.returncode == 0 and "shows no thinking" in result.stderr
    assert "shows no thinking" not in run_cli("complete", "-m", str(stories), "-n", "2", "Once").stderr
