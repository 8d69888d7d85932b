"""Prompt-lookup speculative decoding vs plain decoding, and the persistent prompt cache.

Speculation: greedy generation after a summarization prompt and a translation prompt (news text
from ../shared/eval), and after text with no repeats (random tokens), with and without
`lookup`, through the same engine path as every command. Prints tokens/s, the speedup, the
acceptance rate and whether the outputs are identical.

Prompt cache: time to first token for a ~2,000-token prompt, cold and restored from the cache.

    python bench/speculative.py [--threads 2] [--tokens 128] [--rounds 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from common import arguments, chosen_model, prompt_text

from llmcli.engine import EngineOptions, LocalEngine
from llmcli.engine.promptcache import PromptCache
from llmcli.sampling import SamplingConfig


def prompts(engine: LocalEngine) -> dict[str, list[int]]:
    article = prompt_text(500)
    chat = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
    rng = random.Random(0)
    noise = [rng.randrange(1000, 100000) for _ in range(500)]
    return {
        "summarize": engine.tokenize(
            chat.format(article + "\n\n---\nSummarize the text above."), parse_special=True
        ),
        "translate": engine.tokenize(
            chat.format(article[:1500] + "\n\n---\nTranslate the text above into German."), parse_special=True
        ),
        "no repeats": noise,
    }


def timed(engine: LocalEngine, tokens: list[int], n: int, lookup: int) -> tuple[float, list[int], float]:
    engine.reset()
    engine.generate(tokens, SamplingConfig(temperature=0.0, max_tokens=1)).run()  # prompt in the cache
    start = time.perf_counter()
    result = engine.generate(
        tokens, SamplingConfig(temperature=0.0, max_tokens=n, ignore_eos=True), lookup=lookup
    ).run()
    seconds = time.perf_counter() - start
    stats = result.stats
    acceptance = stats.accepted_tokens / stats.drafted_tokens if stats.drafted_tokens else 0.0
    return n / seconds, result.tokens, acceptance


def speculation(args: argparse.Namespace) -> None:
    with LocalEngine(chosen_model(args.model), EngineOptions(n_ctx=2048, n_threads=args.threads)) as engine:
        print(f"{'prompt':<11} {'plain t/s':>9} {'lookup t/s':>10} {'speedup':>7} {'accepted':>8} identical")
        for name, tokens in prompts(engine).items():
            plain, fast, accepted, same = [], [], 0.0, True
            for _ in range(args.rounds):
                tps, out0, _ = timed(engine, tokens, args.tokens, 0)
                plain.append(tps)
                tps, out1, accepted = timed(engine, tokens, args.tokens, args.draft)
                fast.append(tps)
                same = same and out0 == out1
            p, f = statistics.median(plain), statistics.median(fast)
            print(f"{name:<11} {p:>9.1f} {f:>10.1f} {f / p:>7.2f} {accepted:>8.0%} {same}")


def prompt_cache(args: argparse.Namespace) -> None:
    model = chosen_model(args.model)
    with tempfile.TemporaryDirectory() as folder:
        ttft = []
        for _ in range(2):
            with LocalEngine(model, EngineOptions(n_ctx=4096, n_threads=args.threads)) as engine:
                engine.use_prompt_cache(PromptCache(Path(folder)))
                tokens = engine.tokenize(prompt_text(2000))
                stats = engine.generate(tokens, SamplingConfig(temperature=0.0, max_tokens=4)).run().stats
                ttft.append((stats.ttft_ms, stats.prompt_tokens, stats.cached_tokens))
    (cold, n, _), (warm, _, cached) = ttft
    print(
        f"\nprompt cache, {n}-token prompt: TTFT cold {cold:.0f} ms, restored {warm:.0f} ms "
        f"({cached} tokens from the cache): {cold / warm:.1f}x sooner"
    )


def main() -> None:
    args = arguments(__doc__, threads=2, model=None, tokens=128, rounds=2, draft=8)
    speculation(args)
    prompt_cache(args)


if __name__ == "__main__":
    main()
