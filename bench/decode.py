"""Decode and prompt speed of `llmcli complete` against native llama.cpp and create_completion.

On the Qwen2.5-0.5B-shaped bench model: a ~400-token prompt, then 256 and 1,024 generated tokens.
Native figures come from llama-bench (pp at depth 0, tg at the prompt's depth) of the llama.cpp
that llama-cpp-python bundles. llmcli runs as the installed command (`llmcli complete --json`);
its decode speed is shown from llama.cpp's counters and from wall-clock time (which includes all
of llmcli's per-token work). Rounds interleave the three so machine noise hits them alike.
Decoding is greedy; --sampled uses llmcli's default chain (top-p 0.95, min-p 0.05, temperature 0.8,
a fixed seed) and the same chain in create_completion (top_k=0), so the sampler's cost shows against
llama-bench, which samples nothing.

    python bench/decode.py [--threads 2] [--gen 256 1024] [--rounds 3] [--sampled]
"""

from __future__ import annotations

import time

from common import arguments, chosen_model, llama_bench, llmcli_json, median, prompt_text


def create_completion_run(
    model: str, prompt: str, n: int, threads: int, sampled: bool
) -> tuple[float, float]:
    """(prompt t/s, decode t/s) of llama-cpp-python's create_completion, streaming, greedy or sampled
    with llmcli's default chain."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model, n_ctx=4096, n_threads=threads, n_threads_batch=threads, flash_attn=True, verbose=False
    )
    eog = [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(llm._model.vocab, t)]
    n_prompt = len(llm.tokenize(prompt.encode()))
    start = time.perf_counter()
    first = last = start
    count = 0
    # At temperature 0 llama-cpp-python samples greedily and ignores the rest of the chain.
    for _ in llm.create_completion(
        prompt,
        max_tokens=n,
        stream=True,
        logit_bias={t: -1e9 for t in eog},
        temperature=0.8 if sampled else 0.0,
        top_k=0,
        top_p=0.95,
        min_p=0.05,
        seed=1,
    ):
        last = time.perf_counter()
        if count == 0:
            first = last
        count += 1
    llm.close()
    return n_prompt / (first - start), (count - 1) / (last - first)


def main() -> None:
    args = arguments(
        __doc__,
        threads=2,
        model=None,
        gen=[256, 1024],
        prompt_tokens=400,
        rounds=3,
        no_create_completion=False,
        sampled=False,
    )

    model = chosen_model(args.model)
    prompt = prompt_text(args.prompt_tokens)
    base = [
        "complete",
        "-m",
        str(model),
        "--threads",
        str(args.threads),
        "--flash-attn",
        "on",
        *(["--seed", "1"] if args.sampled else ["--greedy"]),
        "--ignore-eos",
    ]
    n_prompt = llmcli_json(*base, "-n", "1", stdin=prompt)["prompt_tokens"]
    print(
        f"model {model.name}, prompt {n_prompt} tokens, {args.threads} threads, flash attention on, "
        f"{args.rounds} rounds, {'sampled (default chain)' if args.sampled else 'greedy'}"
    )

    native_pp: list[float] = []
    ours_pp: list[float] = []
    rows: dict[int, dict[str, list[float]]] = {
        n: {"native": [], "counters": [], "wall": [], "cc": []} for n in args.gen
    }
    cc_pp: list[float] = []
    for _ in range(args.rounds):
        native_pp += [
            r["avg_ts"] for r in llama_bench(model, args.threads, ["-p", str(n_prompt), "-n", "0", "-r", "1"])
        ]
        for n in args.gen:
            rows[n]["native"] += [
                r["avg_ts"]
                for r in llama_bench(
                    model, args.threads, ["-p", "0", "-n", str(n), "-d", str(n_prompt), "-r", "1"]
                )
            ]
            result = llmcli_json(*base, "-n", str(n), stdin=prompt)
            rows[n]["counters"].append(result["decode_tps"])
            rows[n]["wall"].append(
                (result["generated_tokens"] - 1) / (result["total_ms"] - result["ttft_ms"]) * 1000
            )
            ours_pp.append(result["prompt_tps"])
            if not args.no_create_completion:
                pp, tg = create_completion_run(str(model), prompt, n, args.threads, args.sampled)
                rows[n]["cc"].append(tg)
                cc_pp.append(pp)

    print(
        f"\n{'test':<16}{'native t/s':>12}{'llmcli t/s':>12}{'ratio':>8}{'create_completion':>20}{'ratio':>8}"
    )
    nat, ours = median(native_pp), median(ours_pp)
    cc = median(cc_pp)
    print(f"{'pp' + str(n_prompt):<16}{nat:>12.1f}{ours:>12.1f}{ours / nat:>8.3f}{cc:>20.1f}{cc / nat:>8.3f}")
    for n, r in rows.items():
        nat = median(r["native"])
        for label, key in (("counters", "counters"), ("wall", "wall")):
            ours = median(r[key])
            name = f"tg{n} ({label})"
            cc = median(r["cc"]) if key == "wall" else float("nan")
            print(f"{name:<16}{nat:>12.1f}{ours:>12.1f}{ours / nat:>8.3f}{cc:>20.1f}{cc / nat:>8.3f}")
    print("\nratios are llmcli / native (medians); tg at depth = prompt tokens, like llmcli's decode.")


if __name__ == "__main__":
    main()
