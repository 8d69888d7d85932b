"""Time to first token across a 10-turn chat: KV reuse keeps turn 10 as fast as turn 1.

On the Qwen2.5-0.5B-shaped bench model (ChatML template, real Qwen tokenizer), through the same
Chat class as `llmcli chat`: a system prompt, then 10 user messages of 40 tokens each, each
answered with 64 tokens. Prints TTFT per turn with KV reuse, and without it (cache cleared before
every turn, i.e. the whole conversation re-evaluated), and the turn-10 / turn-1 ratio (target <= 1.2).

    python bench/chat.py [--threads 2] [--answer 64]
"""

from __future__ import annotations

import json
import statistics

from common import SHARED, arguments, bench_model

from llmcli.chat.conversation import Chat
from llmcli.chat.templates import pick_template
from llmcli.engine import EngineOptions, LocalEngine
from llmcli.sampling import SamplingConfig

SYSTEM = "You are a helpful assistant. Answer briefly and precisely."


def messages(engine: LocalEngine, n: int, size: int = 40) -> list[str]:
    """n user messages of exactly `size` tokens each (news sentences, cut by tokens)."""
    records = (SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl").read_text().splitlines()
    texts = []
    for record in records:
        for sentence in json.loads(record)["article"].split(" . "):
            tokens = engine.tokenize("What does this say? " + sentence, add_special=False)
            text = engine.detokenize(tokens[:size])
            if len(tokens) >= size and len(engine.tokenize(text, add_special=False)) == size:
                texts.append(text)
            if len(texts) == n:
                return texts
    raise SystemExit("not enough sentences")


def run(engine: LocalEngine, answer: int, reuse: bool, texts: list[str]) -> list[tuple[float, int, int]]:
    engine.reset()  # every conversation starts cold
    bos, eos = engine.special_text()
    chat = Chat(
        engine,
        pick_template(engine.info.chat_template, bos_token=bos, eos_token=eos),
        SamplingConfig(temperature=0.0, max_tokens=answer, ignore_eos=True),
        system=SYSTEM,
    )
    rows = []
    for text in texts:
        if not reuse:
            engine.reset()  # the baseline: the whole conversation evaluated again
        for _ in chat.ask(text):
            pass
        assert chat.turn is not None
        stats = chat.turn.completion.stats
        rows.append((stats.ttft_ms, stats.prompt_tokens, stats.prompt_tokens - stats.cached_tokens))
    return rows


def main() -> None:
    args = arguments(__doc__, threads=2, answer=64, turns=10, repeats=3)
    with LocalEngine(bench_model(), EngineOptions(n_ctx=4096, n_threads=args.threads)) as engine:
        texts = messages(engine, args.turns)
        runs = [
            (run(engine, args.answer, True, texts), run(engine, args.answer, False, texts))
            for _ in range(args.repeats)
        ]

    def med(rows: list[list[tuple[float, int, int]]]) -> list[tuple[float, int, int]]:
        return [
            (statistics.median(r[i][0] for r in rows), rows[0][i][1], rows[0][i][2])
            for i in range(len(rows[0]))
        ]

    with_reuse, without = med([r for r, _ in runs]), med([w for _, w in runs])
    header = f"{'turn':>4} {'prompt tok':>10} {'evaluated':>9} {'TTFT ms':>8}"
    print(f"{header} | {'no reuse: evaluated':>19} {'TTFT ms':>8}")
    for i, ((ttft, total, new), (ttft0, _, new0)) in enumerate(zip(with_reuse, without, strict=True), 1):
        print(f"{i:>4} {total:>10} {new:>9} {ttft:>8.0f} | {new0:>19} {ttft0:>8.0f}")
    ratio = with_reuse[-1][0] / with_reuse[0][0]
    print(f"\nmedians of {args.repeats} runs; messages of 40 tokens, answers of {args.answer}")
    print(
        f"turn {args.turns} / turn 1 TTFT with KV reuse: {ratio:.2f} (target <= 1.2); "
        f"without reuse: {without[-1][0] / without[0][0]:.2f}"
    )


if __name__ == "__main__":
    main()
