"""Long prompts show how their evaluation goes, and documents cut into pieces how those go; Ctrl-C during
one stops cleanly; prompt lookup by default."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from llmcli.engine import EngineOptions, LocalEngine
from llmcli.engine.threads import PROMPT, PROMPT_ROWS
from llmcli.sampling import SamplingConfig
from llmcli.ui.environment import Environment
from llmcli.ui.render import PieceMeter, PromptMeter

Run = Callable[..., subprocess.CompletedProcess[str]]
GREEDY = SamplingConfig(temperature=0.0, max_tokens=24)


def env(tty: bool, environ: Mapping[str, str] | None = None) -> tuple[Environment, io.StringIO]:
    err = io.StringIO()
    return Environment(io.BytesIO(), io.BytesIO(), err, False, False, tty, environ or {"NO_COLOR": "1"}), err


def test_the_meter_redraws_one_line_on_a_terminal_and_clears_it() -> None:
    e, err = env(tty=True)
    meter = PromptMeter(e, after=0.0)
    meter(0, 3000)
    meter(1000, 3000)
    meter(2000, 3000)
    meter(3000, 3000)
    text = err.getvalue()
    assert text.count("\r") == 3 and text.endswith("\r\x1b[K")
    assert "prompt 2,000 / 3,000 tokens · " in text and " t/s · " in text and " s left" in text


def test_off_a_terminal_the_meter_writes_a_line_now_and_then() -> None:
    e, err = env(tty=False)
    meter = PromptMeter(e, every=0.0)
    for done in (0, 512, 1024, 1536):
        meter(done, 1536)
    lines = err.getvalue().splitlines()
    assert [line.split(" tokens")[0] for line in lines] == ["prompt 512 / 1,536", "prompt 1,024 / 1,536"]


def test_the_piece_meter_tells_pieces_done_time_each_and_time_left() -> None:
    e, err = env(tty=False)
    meter = PieceMeter(e, every=0.0)
    for done in range(4):
        meter(done, 3)
    lines = err.getvalue().splitlines()
    assert [line.split(" · ")[0] for line in lines] == ["piece 1 / 3", "piece 2 / 3"]
    assert all(line.endswith(" left") and " each · " in line for line in lines)


def test_the_engine_reports_each_batch_and_a_ctrl_c_between_batches_leaves_it_exact(stories: Path) -> None:
    seen: list[tuple[int, int]] = []
    with LocalEngine(stories, EngineOptions(n_ctx=6144)) as engine:
        prompt = engine.tokenize("Once upon a time, there was a little girl. " * 400)
        assert len(prompt) > 2 * engine.n_batch
        expected = engine.generate(prompt, GREEDY).run().tokens
        engine.generate(engine.tokenize("The cat"), GREEDY).run()  # another prompt in the cache

        def interrupt(done: int, total: int) -> None:
            seen.append((done, total))
            if len(seen) == 2:
                raise KeyboardInterrupt

        engine.prompt_meter = interrupt
        generation = engine.generate(prompt, GREEDY)
        with pytest.raises(KeyboardInterrupt):
            generation.run()
        assert generation.completion().finish_reason == "interrupted"
        (first, total), (second, _) = seen
        step = engine.context.n_ubatch  # batches of what llama.cpp computes at once
        assert (first, second) == (step, 2 * step) and total >= len(prompt) - 1
        engine.prompt_meter = None
        assert engine.generate(prompt, GREEDY).run().tokens == expected


def test_the_thread_tuner_watches_a_long_prompt_batch_by_batch(
    stories: Path, tuner_steps: list[tuple[int, float]]
) -> None:
    # A collapse during a 20,000-token prompt would cost minutes: each batch the prompt is evaluated in
    # goes to the tuner, as PROMPT steps worth their tokens.
    with LocalEngine(stories, EngineOptions(n_ctx=4096)) as engine:
        prompt = engine.tokenize("Once upon a time, there was a little girl. " * 150)
        engine.generate(prompt, GREEDY).run()
        size, tuned = engine.context.n_ubatch, engine.context.n_threads > 1
    full, rest = divmod(len(prompt), size)
    assert full >= 2
    batches = [size] * full + ([rest] if rest >= PROMPT_ROWS else [])
    expected = [(PROMPT, n / PROMPT_ROWS) for n in batches]
    assert [seen for seen in tuner_steps if seen[0] == PROMPT] == (expected if tuned else [])
    assert len(tuner_steps) > len(expected) or not tuned  # and the generated tokens' steps


def test_complete_drafts_from_the_prompt_by_default_and_the_output_is_the_same(
    run_cli: Run, stories: Path
) -> None:
    # The story told three times and begun again: the model retells its first sentence (it diverges
    # after that), a long match that is worth drafting.
    story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    story = story * 3 + "Once"
    runs = {
        flag: json.loads(
            run_cli("complete", "-m", str(stories), "--greedy", "-n", "48", "--json", *flag, story).stdout
        )
        for flag in ((), ("--no-speculative",))
    }
    on, off = runs[()], runs[("--no-speculative",)]
    assert on["text"] == off["text"]
    assert on["drafted_tokens"] > 0 and off["drafted_tokens"] == 0


def test_summarize_shows_a_long_prompt_going_one_document_or_many(
    cli_env: dict[str, str], stories: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    import llmcli.ui.render as render
    from llmcli.cli.app import app

    # A line at every batch instead of every ten seconds, for the test.
    render.PromptMeter.__init__.__kwdefaults__ = {"after": 0.0, "every": 0.0}
    try:
        doc = tmp_path / "long.txt"
        doc.write_text(" ".join(["Lily and Tom went to the park to play with a red ball."] * 400))
        (tmp_path / "short.txt").write_text("Tom saw a dog.")
        base = ["summarize", "-m", str(stories), "--ctx", "8192", "--greedy", "-n", "8", "--parallel", "1"]
        for paths in ([doc], [doc, tmp_path / "short.txt"]):
            e, err = env(tty=False, environ=cli_env)
            result = CliRunner().invoke(app, [*base, *map(str, paths)], obj=e)
            assert result.exit_code == 0, err.getvalue()
            lines = [line for line in err.getvalue().splitlines() if line.startswith("prompt ")]
            assert lines and all(" t/s · " in line and line.endswith(" left") for line in lines), (
                err.getvalue()
            )
    finally:
        render.PromptMeter.__init__.__kwdefaults__ = {"after": 1.0, "every": 10.0}


def test_translate_shows_how_a_documents_pieces_go_one_document_at_a_time(
    cli_env: dict[str, str], hallo: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    import llmcli.ui.render as render
    from llmcli.cli.app import app

    render.PromptMeter.__init__.__kwdefaults__ = {"after": 0.0, "every": 0.0}  # PieceMeter's too
    try:
        doc = tmp_path / "long.txt"
        doc.write_text("\n\n".join(f"Paragraph {i}. Lily and Tom went to the park." for i in range(6)))
        (tmp_path / "short.txt").write_text("Tom saw a dog.")
        base = ["translate", "--to", "de", "-m", str(hallo), "--ctx", "1024", "-n", "8"]

        def pieces(*args: str) -> list[str]:
            e, err = env(tty=False, environ=cli_env)
            result = CliRunner().invoke(app, [*base, *args], obj=e)
            assert result.exit_code == 0, err.getvalue()
            return [line.split(" · ")[0] for line in err.getvalue().splitlines() if line.startswith("piece ")]

        assert pieces(str(doc)) == [f"piece {i} / 6" for i in range(1, 6)]
        both = [str(doc), str(tmp_path / "short.txt"), "--out-dir", str(tmp_path / "out")]
        assert pieces(*both, "--parallel", "1") == [f"piece {i} / 6" for i in range(1, 6)]
        # Documents decoded side by side would take turns on one meter: the batch's lines show instead.
        assert pieces(*both, "--parallel", "2", "--ctx", "2048", "--force") == []
    finally:
        render.PromptMeter.__init__.__kwdefaults__ = {"after": 1.0, "every": 10.0}
