"""What reusing the instruction prefix's KV saves in summarize and translate.

Both tasks send one request per chunk (summarize) or segment (translate) under the same system
prompt. The engine keeps that prefix in its KV cache, so each request evaluates only its own
part. This runs the real Summarizer / Translator on the bench model (Qwen2.5-0.5B shape, ChatML,
real tokenizer) over news articles, once as llmcli does and once with the cache cleared before
every request, and prints prompt tokens evaluated and wall time for both.

    python bench/summarize.py [--threads 2] [--articles 3] [--ctx 2048]
"""

from __future__ import annotations

import json
import time
from typing import Any

from common import SHARED, arguments, bench_model

from llmcli.chat.templates import pick_template
from llmcli.engine import EngineOptions, Generation, LocalEngine
from llmcli.sampling import SamplingConfig
from llmcli.tasks.asking import TaskSetup
from llmcli.tasks.summarize import Summarizer, SummaryOptions
from llmcli.tasks.translate import TranslateOptions, Translator
from llmcli.text.languages import resolve_language


class Counting:
    """The engine as the tasks see it, keeping each generation's stats; optionally without KV reuse."""

    def __init__(self, engine: LocalEngine, reuse: bool) -> None:
        self._engine, self.reuse = engine, reuse
        self.generations: list[Generation] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def generate(self, tokens: list[int], sampling: SamplingConfig, *, lookup: int = 0) -> Generation:
        if not self.reuse:
            self._engine.reset()
        self.generations.append(self._engine.generate(tokens, sampling, lookup=lookup))
        return self.generations[-1]

    def counts(self) -> tuple[int, int]:
        """Prompt tokens sent, and those evaluated (not found in the cache)."""
        stats = [g.completion().stats for g in self.generations]
        return sum(s.prompt_tokens for s in stats), sum(s.prompt_tokens - s.cached_tokens for s in stats)


def articles(n: int) -> list[str]:
    lines = (SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl").read_text().splitlines()
    return [json.loads(line)["article"] for line in lines[:n]]


def run(engine: LocalEngine, task: str, reuse: bool, docs: list[str]) -> tuple[int, int, int, float]:
    engine.reset()
    counting = Counting(engine, reuse)
    bos, eos = engine.special_text()
    template = pick_template(engine.info.chat_template, bos_token=bos, eos_token=eos)
    sampling = SamplingConfig(temperature=0.0, ignore_eos=True)
    start = time.perf_counter()
    if task == "summarize":
        setup = TaskSetup(counting, template, sampling)  # type: ignore[arg-type]
        summarizer = Summarizer(setup, SummaryOptions(words=24))
        calls = sum(summarizer.summarize(doc).calls for doc in docs)
    else:
        setup = TaskSetup(
            counting,  # type: ignore[arg-type]
            template,
            SamplingConfig(temperature=0.0, ignore_eos=True, max_tokens=24),
        )
        translator = Translator(setup, TranslateOptions(resolve_language("de"), resolve_language("en")))
        calls = sum(translator.translate(doc).calls for doc in docs)
    return calls, *counting.counts(), time.perf_counter() - start


def main() -> None:
    args = arguments(__doc__, threads=2, articles=3, ctx=2048)
    docs = articles(args.articles)
    # Translate paragraphs of a few sentences, the way articles are laid out.
    paragraphs = ["\n\n".join(" . ".join(d.split(" . ")[i : i + 3]) for i in range(0, 12, 3)) for d in docs]
    with LocalEngine(bench_model(), EngineOptions(n_ctx=args.ctx, n_threads=args.threads)) as engine:
        print(
            f"{'task':<10} {'calls':>5} {'prompt tok':>10} | {'evaluated':>9} {'seconds':>7} | "
            f"{'no reuse: evaluated':>19} {'seconds':>7} | time saved"
        )
        for task, inputs in (("summarize", docs), ("translate", paragraphs)):
            calls, prompt, evaluated, seconds = run(engine, task, True, inputs)
            _, _, evaluated0, seconds0 = run(engine, task, False, inputs)
            print(
                f"{task:<10} {calls:>5} {prompt:>10} | {evaluated:>9} {seconds:>7.1f} | "
                f"{evaluated0:>19} {seconds0:>7.1f} | {1 - seconds / seconds0:>9.0%}"
            )


if __name__ == "__main__":
    main()
