"""Several sequences in one llama.cpp context (continuous batching), with the real stories model,
and `--parallel` through the installed command."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from costs import cheap
from ties import each_in_a_thread
from tinymodel import write_chat_model

from llmcli.engine import Capabilities, EngineOptions, LocalEngine, ParallelEngine, Unsupported
from llmcli.engine.threads import PROMPT, PROMPT_ROWS
from llmcli.errors import ContextOverflowError, GenerationError
from llmcli.sampling import SamplingConfig

Run = Callable[..., subprocess.CompletedProcess[str]]
PROMPTS = [
    "Once upon a time",
    "Tom had a big red ball. One day, he went to the park and",
    "The sun was shining",
    "Lily and her mom went to the store to buy some food for the party. They saw",
    "One day, a little bird",
    "Sam was sad because",
]


def run_all(engine: ParallelEngine, jobs: list[tuple[str, SamplingConfig]]) -> list[str]:
    """Each job from its own thread, as summarize and translate call the engine."""
    results: list[str] = [""] * len(jobs)

    def work(i: int) -> None:
        results[i] = engine.generate(jobs[i][0], jobs[i][1]).run().text

    each_in_a_thread(work, len(jobs))
    return results


def test_greedy_results_equal_the_sequential_ones(stories: Path, stories_engine: LocalEngine) -> None:
    # Different prompt lengths and limits, a stop string on one, more prompts than slots (refills).
    jobs = [
        (p, SamplingConfig(temperature=0.0, max_tokens=40 + 8 * i, stop=("park",) if i == 0 else ()))
        for i, p in enumerate(PROMPTS)
    ]
    expected = [stories_engine.generate(p, s).run().text for p, s in jobs]
    assert expected[0].endswith("in the ") and "park" not in expected[0]  # the stop string ended it
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=1024, n_seq_max=4))) as engine:
        assert engine.n_parallel == 4 and engine.n_ctx == 256
        assert run_all(engine, jobs) == expected
        # Two slots for six prompts: every slot is freed and refilled twice.
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=512, n_seq_max=2))) as engine:
        assert run_all(engine, jobs) == expected


def test_live_sequences_keep_consecutive_slots(
    stories: Path, stories_engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second of three ends first and nothing waits for its slot: the third moves into it, since
    # llama.cpp runs a graph per run of consecutive sequence ids. The outputs stay the sequential ones.
    jobs = [
        (p, SamplingConfig(temperature=0.0, max_tokens=n)) for p, n in zip(PROMPTS, (60, 5, 60), strict=False)
    ]
    expected = [stories_engine.generate(p, s).run().text for p, s in jobs]
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=768, n_seq_max=3))) as engine:
        steps: list[list[int]] = []
        decode = engine.context.decode_sequences

        def spy(
            tokens: list[int], positions: list[int], seqs: list[int], logits: list[int], **kw: Any
        ) -> float:
            steps.append(sorted(set(seqs)))
            return decode(tokens, positions, seqs, logits, **kw)

        monkeypatch.setattr(engine.context, "decode_sequences", spy)
        gens = [engine.generate(p, s) for p, s in jobs]
        assert [g.run().text for g in gens] == expected
    assert all(ids == list(range(ids[0], ids[0] + len(ids))) for ids in steps)
    assert [0, 1] in steps


def test_sampled_sequences_keep_their_own_seeds(stories: Path, stories_engine: LocalEngine) -> None:
    jobs = [
        (p, SamplingConfig(temperature=0.9, top_k=40, seed=7 + i, max_tokens=20))
        for i, p in enumerate(PROMPTS)
    ]
    expected = [stories_engine.generate(p, s).run().text for p, s in jobs]
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=1024, n_seq_max=4))) as engine:
        assert run_all(engine, jobs) == expected


def test_a_shared_prefix_is_evaluated_once(stories: Path, stories_engine: LocalEngine) -> None:
    # As summarize sends them: the same long instructions, then each document.
    head = "Lily and her mom went to the store to buy some food for the party. They saw a big cake. "
    jobs = [(head + p, SamplingConfig(temperature=0.0, max_tokens=24)) for p in PROMPTS]
    expected = [stories_engine.generate(p, s).run().text for p, s in jobs]
    shared = len(stories_engine.tokenize(head)) - 1  # the prompts' common tokens, less the one before p
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=1024, n_seq_max=2))) as engine:
        first = engine.generate(*jobs[0])
        assert first.run().text == expected[0] and first.stats.cached_tokens == 0
        # While one sequence runs, the next takes its prefix from the other slot's cells.
        gens = [engine.generate(p, s) for p, s in jobs[1:]]
        assert [g.run().text for g in gens] == expected[1:]
        assert all(g.stats.cached_tokens >= shared for g in gens)


# Stories that repeat themselves: the model copies what came before, so prompt lookup drafts.
COPIED = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big dog in the park. Once upon a time, there was a little girl named Lily.",
    "Tom had a big red ball. He liked to play with it every day. Tom had a big red ball.",
    "The sun was shining and the birds were singing. Lily went to the park. The sun was shining",
]


def test_drafts_are_verified_in_the_shared_batch(stories: Path, stories_engine: LocalEngine) -> None:
    # Limits that end mid-draft, a stop string, EOS, and more prompts than slots.
    jobs = [
        (p, SamplingConfig(temperature=0.0, max_tokens=limit, stop=stop))
        for p in COPIED
        for limit, stop in ((1, ()), (7, ()), (60, ()), (200, ("park",)))
    ]
    expected = [stories_engine.generate(p, s).run() for p, s in jobs]
    with cheap(ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=1024, n_seq_max=4)))) as engine:
        gens = [engine.generate(p, s, lookup=8) for p, s in jobs]
        results = [g.run() for g in gens]
    assert [r.text for r in results] == [r.text for r in expected]
    assert [r.finish_reason for r in results] == [r.finish_reason for r in expected]
    assert [r.stats.generated_tokens for r in results] == [r.stats.generated_tokens for r in expected]
    accepted = sum(r.stats.accepted_tokens for r in results)
    assert accepted > 50 and sum(r.stats.drafted_tokens for r in results) >= accepted


def test_the_thread_tuner_watches_decoding_steps_by_sequence_count(
    stories: Path, tuner_steps: list[tuple[int, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each sequence more changes what a step costs, and so do drafts and prompt chunks: the tuner is
    # given every step, of one token per sequence with its count of sequences as its kind (a
    # verification as the plain steps its drafts are priced at), with prompt chunks by its tokens.
    steps: list[tuple[int, int, int | None, float]] = []  # tokens, sequences, kind, work
    prompting: list[tuple[int, int | None, float]] = []  # steps with prompt chunks: tokens, kind, work
    jobs = [
        (p, SamplingConfig(temperature=0.0, max_tokens=n)) for p, n in zip(COPIED, (80, 20, 50), strict=True)
    ]
    with cheap(ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=768, n_seq_max=3)))) as engine:
        decode = engine.context.decode_sequences

        def spy(
            tokens: list[int], positions: list[int], seqs: list[int], logits: list[int], **kw: Any
        ) -> float:
            steps.append((len(tokens), len(set(seqs)), kw["kind"], kw["work"]))
            if 0 in logits:  # a prompt chunk's rows but its last ask for no logits
                prompting.append((len(tokens), kw["kind"], kw["work"]))
            return decode(tokens, positions, seqs, logits, **kw)

        monkeypatch.setattr(engine.context, "decode_sequences", spy)
        results = [g.run() for g in [engine.generate(p, s, lookup=8) for p, s in jobs]]
        tuned = engine.context.n_threads > 1  # the default count of a machine with one core is never tuned
    assert sum(r.stats.accepted_tokens for r in results) > 20
    # The decoding thread may take the first prompt before the others come: it is short of a chunk.
    assert prompting and all(
        kind == (PROMPT if tokens >= PROMPT_ROWS else None) and work == tokens / PROMPT_ROWS
        for tokens, kind, work in prompting
    )
    watched = [
        (tokens, seqs, kind, work) for tokens, seqs, kind, work in steps if kind is not None and kind > 0
    ]
    assert all(seqs == kind and work >= 1.0 for _, seqs, kind, work in watched)
    assert all(work == 1.0 for tokens, seqs, _, work in watched if tokens == seqs)  # plain steps
    assert {1, 3} <= {kind for _, _, kind, _ in watched}
    assert any(work > 1.0 for *_, work in watched)  # verifications (measured ones may cost no more)
    assert tuner_steps == ([(kind, work) for _, _, kind, work in steps if kind is not None] if tuned else [])


def test_drafts_stop_at_the_context_end(stories: Path) -> None:
    endless = SamplingConfig(temperature=0.0, ignore_eos=True)
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=512, n_seq_max=2))) as plain:
        expected = [g.run() for g in [plain.generate(p, endless) for p in COPIED[:2]]]
    with cheap(ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=512, n_seq_max=2)))) as engine:
        results = [g.run() for g in [engine.generate(p, endless, lookup=8) for p in COPIED[:2]]]
    assert [r.tokens for r in results] == [r.tokens for r in expected]
    assert all(r.finish_reason == "context" for r in results)
    assert all(r.stats.accepted_tokens > 0 for r in results)


def test_capabilities_and_speed_stats(stories: Path) -> None:
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=512, n_seq_max=2))) as engine:
        assert engine.capabilities == Capabilities(parallel=2, speculation=True)
        with pytest.raises(Unsupported):
            engine.window_logits([1, 2, 3], 0)
        gens = [engine.generate(p, SamplingConfig(temperature=0.0, max_tokens=16)) for p in PROMPTS[:3]]
        for stats in [g.run().stats for g in gens]:
            assert stats.generated_tokens == 16
            assert stats.prompt_ms > 0 and stats.decode_ms > 0 and 0 < stats.ttft_ms <= stats.total_ms
            assert stats.prompt_tps > 0 and stats.decode_tps > 0


def test_limits_and_closing(stories: Path) -> None:
    engine = ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=512, n_seq_max=2)))
    with pytest.raises(ContextOverflowError, match="each of the 2 parallel sequences holds 256"):
        engine.generate("Once upon a time " * 80, SamplingConfig(temperature=0.0))
    endless = SamplingConfig(temperature=0.0, ignore_eos=True)
    result = engine.generate("Once upon a time", endless).run()
    # As with one sequence: the last token is sampled from the full cache's logits.
    assert result.finish_reason == "context" and len(result.tokens) == 256 - 5 + 1
    engine.close()
    with pytest.raises(GenerationError, match="closed"):
        engine.generate("Once", endless)
    with pytest.raises(GenerationError, match="closed"):
        engine.tokenize("Once")


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chat_model(tmp_path_factory.mktemp("parallel-cli") / "chat.gguf")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, prompt in enumerate(PROMPTS):
        (folder / f"doc{i}.txt").write_text(f"{prompt} a cat and a dog played.\n\nThey were happy. {i}\n")
    return folder


@pytest.mark.parametrize("command", ["summarize", "translate"])
def test_cli_parallel_equals_sequential(
    run_cli: Run, chat_model: Path, docs: Path, tmp_path: Path, command: str
) -> None:
    task = ["--greedy", "-n", "12"] if command == "summarize" else ["--to", "de", "-n", "12"]
    # The same context per sequence: 512 tokens alone, or 2,048 split four ways.
    one = run_cli(command, str(docs), "-m", str(chat_model), *task, "--ctx", "512", "--parallel", "1")
    four = run_cli(command, str(docs), "-m", str(chat_model), *task, "--ctx", "2048", "--parallel", "4")
    assert one.returncode == 0 and four.returncode == 0, one.stderr + four.stderr
    assert four.stdout == one.stdout  # in input order, under the same headers
    assert four.stdout.count("==> ") == len(PROMPTS)


def test_cli_parallel_failures_and_small_context(
    run_cli: Run, chat_model: Path, docs: Path, tmp_path: Path
) -> None:
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0binary")
    out = tmp_path / "out"
    args = [
        "summarize",
        str(docs),
        "-m",
        str(chat_model),
        "-n",
        "8",
        "--out-dir",
        str(out),
        "--parallel",
        "3",
    ]
    result = run_cli(*args, "--ctx", "1536")
    assert result.returncode == 1 and "6 summarized, 0 already done, 1 failed" in result.stderr
    assert "image.png is not a text file" in result.stderr
    assert len(list(out.glob("*.summary.md"))) == 6
    again = run_cli(*args, "--ctx", "1536")
    assert "0 summarized, 6 already done, 1 failed" in again.stderr
    small = run_cli(*args, "--ctx", "256", "--force")
    assert small.returncode == 5 and "--parallel 3 splits the context" in small.stderr
    assert "lower --parallel" in small.stderr and "Traceback" not in small.stderr
