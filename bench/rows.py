"""What a verification row costs: one decode of k tokens of one sequence, with logits for every row
(as verifying k - 1 drafts needs) and for the last row only.

The difference is the model's output matrix, computed once per row that asks for logits: on a model
with a large vocabulary (Gemma 3's 262,144 tokens) it is most of the weights, and where it is
compute-bound a draft row costs nearly a plain step. Medians over --rounds, interleaved, at a depth
of --depth tokens, greedy; flash attention as llmcli chooses it unless --flash-attn on|off.

    python bench/rows.py [--model GGUF] [--threads 2] [--depth 500] [--rounds 12] [--flash-attn auto]
"""

from __future__ import annotations

import time

from common import arguments, chosen_model, median, prompt_text

from llmcli.engine import EngineOptions, LocalEngine

ROWS = [1, 2, 3, 4, 6, 8]


def main() -> None:
    args = arguments(__doc__, model=None, threads=2, depth=500, rounds=12, flash_attn="auto")
    flash = {"on": True, "off": False, "auto": None}[args.flash_attn]
    options = EngineOptions(n_ctx=args.depth + 2 * max(ROWS), n_threads=args.threads, flash_attn=flash)
    with LocalEngine(chosen_model(args.model), options) as engine:
        context = engine.context
        tokens = engine.tokenize(prompt_text(2 * (args.depth + max(ROWS))))
        prompt, rows = tokens[: args.depth], tokens[args.depth :]
        for start in range(0, len(prompt), context.n_ubatch):
            context.decode(prompt[start : start + context.n_ubatch], start, 0, 0)
        times: dict[tuple[int, bool], list[float]] = {}
        for _ in range(args.rounds):
            for k in ROWS:
                for every in (True, False):
                    begin = time.perf_counter()
                    context.decode(rows[:k], args.depth, 0 if every else k - 1, k)
                    context.synchronize()
                    times.setdefault((k, every), []).append(time.perf_counter() - begin)
                    context.drop(0, args.depth)
    print(f"{'rows':>4} {'all logits ms':>14} {'last logits ms':>15} {'each extra logits row ms':>25}")
    for k in ROWS:
        every_ms, last_ms = (median(times[(k, flag)]) * 1000 for flag in (True, False))
        extra = (every_ms - last_ms) / (k - 1) if k > 1 else 0.0
        print(f"{k:>4} {every_ms:>14.1f} {last_ms:>15.1f} {extra:>25.1f}")


if __name__ == "__main__":
    main()
