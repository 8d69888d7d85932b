"""How often greedy output changes with speculation or several sequences in one batch.

Greedy decoding with prompt-lookup drafts, with a draft model, and through the parallel engine
(4 sequences) should give the same tokens as plain one-at-a-time decoding. llama.cpp computes a
batch of several rows with other CPU kernels than a single row, so the logits differ in their last
bits, and where the two best tokens are that close greedy can pick the other one. This counts the
generations that differ, where they first differ, and how close the two best logits were there
(plain decoding's top-2 margin), on the trained stories260K model (F32 and quantized copies) and on
the bench model, whose random weights put near-ties everywhere.

    python bench/identity.py [--prompts 20] [--tokens 200] [--bench-prompts 4]
"""

from __future__ import annotations

import threading
from pathlib import Path

from common import arguments, bench_model, stories_model

from llmcli.engine import EngineOptions, LocalEngine, ParallelEngine
from llmcli.sampling import SamplingConfig

STARTS = [
    "Once upon a time", "One day, a little boy named Tom", "Lily wanted to play", "The sun was shining",
    "There was a big dog", "Sara and Ben went to the park", "A little bird", "Mom said",
    "The cat was sad because", "Tim had a red ball", "Once there was a girl who loved to sing",
    "In a small town", "The tree was very tall", "Max the dog", "Anna found a shiny rock",
    "It was a rainy day", "The boy and his dad", "Sue liked to draw", "A big truck", "The little fish",
]  # fmt: skip
PARALLEL = 4


def engine(model: Path, threads: int, sequences: int = 1) -> LocalEngine:
    return LocalEngine(model, EngineOptions(n_ctx=1024 * sequences, n_threads=threads, n_seq_max=sequences))


def in_parallel(model: Path, threads: int, prompts: list[str], sampling: SamplingConfig) -> list[list[int]]:
    """Greedy outputs of the parallel engine, PARALLEL prompts in flight at a time."""
    results: list[list[int]] = [[] for _ in prompts]
    with ParallelEngine(engine(model, threads, PARALLEL)) as parallel:

        def run(i: int) -> None:
            results[i] = parallel.generate(prompts[i], sampling).run().tokens

        for first in range(0, len(prompts), PARALLEL):
            workers = [threading.Thread(target=run, args=(i,)) for i in range(first, first + PARALLEL)]
            for worker in workers[: len(prompts) - first]:
                worker.start()
            for worker in workers[: len(prompts) - first]:
                worker.join()
    return results


def divergences(plain: LocalEngine, prompts: list[str], base: list[list[int]], other: list[list[int]]) -> str:
    """ "same/total", then each differing generation's first differing position and top-2 margin there."""
    notes = []
    for prompt, a, b in zip(prompts, base, other, strict=True):
        first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
        if first is not None:
            row = plain.next_logits(plain.tokenize(prompt) + a[:first])
            best, second = sorted(row)[-2:][::-1]
            notes.append(f"@{first} ({best - second:.0e})")
    same = len(prompts) - len(notes)
    return f"{same}/{len(prompts)}" + (f" {' '.join(notes)}" if notes else "")


def sequential(
    model: Path, threads: int, prompts: list[str], sampling: SamplingConfig, draft: Path | None
) -> list[list[int]]:
    """Greedy outputs with speculation: prompt-lookup drafts, or draft's drafts when given."""
    with engine(model, threads) as target:
        if draft is not None:
            target.use_draft_model(engine(draft, threads))
        return [target.generate(p, sampling, lookup=8).run().tokens for p in prompts]


def compare(name: str, model: Path, prompts: list[str], sampling: SamplingConfig, threads: int) -> None:
    """Print one line per way of decoding: how its outputs compare with plain decoding's."""
    runs = {
        "prompt lookup": lambda: sequential(model, threads, prompts, sampling, None),
        f"--parallel {PARALLEL}": lambda: in_parallel(model, threads, prompts, sampling),
    }
    if name == "stories260K f32":
        runs["draft model (its q4_0 copy)"] = lambda: sequential(
            model, threads, prompts, sampling, stories_model("q4_0")
        )
    with engine(model, threads) as plain:
        base = [plain.generate(p, sampling).run().tokens for p in prompts]
        for label, run in runs.items():
            print(f"{name:<20} {label:<28} {divergences(plain, prompts, base, run())}")


def main() -> None:
    args = arguments(__doc__, prompts=20, tokens=200, bench_prompts=4, threads=2)
    sampling = SamplingConfig(temperature=0.0, max_tokens=args.tokens, ignore_eos=True)
    print(f"greedy, {args.tokens} tokens per prompt; identical/total, then @first difference (top-2 margin)")
    for quant in ("f32", "q8_0", "q4_0"):
        compare(f"stories260K {quant}", stories_model(quant), STARTS[: args.prompts], sampling, args.threads)
    compare("bench q4_0 (random)", bench_model(), STARTS[: args.bench_prompts], sampling, args.threads)


if __name__ == "__main__":
    main()
