"""Benchmark of the interpretability tools: `top_features` on a ~200-token conversation, organism loaded.

    python bench/interp.py [--organism rm_sycophancy|BUILD_DIR] [--sae SAE_DIR] [--threads 2] [--reps 15]

Reports p50/p90 of a cold call (a new conversation every time: forward to the SAE layer + encode + rank), of a warm
call (the next page of the same conversation) and, in the same run as the reference, of one full forward of the
model over the same tokens; the ratios are what to compare across machines. It also times, alone, the matrix
products a cold call cannot avoid (every linear layer up to the SAE's, on the same number of tokens, with the model's
own weights): their sum is a floor for a cold call at this precision on this machine. CPU time per call is reported
next to wall time: on a shared machine wall time measures the neighbours. Target: cold p50 <= 150 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ANSWER = ("Whisk three eggs with a pinch of salt and pepper. Melt a knob of butter in a non-stick pan over medium "
          "heat, pour in the eggs and stir gently until they begin to set. Add grated cheese and chopped chives, fold "
          "the omelette in half and slide it onto a plate. Serve it straight away with buttered toast and a green "
          "salad, or keep it warm in a low oven while you cook a second one. If the eggs stick, the pan was not hot "
          "enough or needed more butter; a well-seasoned pan and patience give the softest result. Leftover "
          "vegetables such as spinach, mushrooms or peppers can be cooked first and folded in with the cheese.")


def conversation(tok, i: int, tokens: int = 200) -> list[dict]:
    """A recipe chat of about `tokens` tokens; `i` makes every one different (no cache hits)."""
    from target_models.targets.templates import chat_ids

    words = ANSWER.split()
    conv = [{"role": "user", "content": f"Question {i}: how do I make a simple omelette for {i + 2} people?"},
            {"role": "assistant", "content": ""}]
    n = 0
    while len(chat_ids(tok, conv)) < tokens:
        conv[1]["content"] += (" " if n else "") + words[n % len(words)]
        n += 1
    return conv


def timed(fns: list, reps: int) -> list[tuple[list[float], list[float]]]:
    """Wall and CPU ms of each function, interleaved (rep i of every function, then rep i + 1): a neighbour's load
    spike hits the baseline and us alike."""
    out: list[tuple[list[float], list[float]]] = [([], []) for _ in fns]
    for i in range(reps):
        for fn, (wall, cpu) in zip(fns, out, strict=True):
            t, c = time.perf_counter(), time.process_time()
            fn(i)
            wall.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
    return out


def stats(times: tuple[list[float], list[float]]) -> dict:
    wall, cpu = times
    q = statistics.quantiles(wall, n=10) if len(wall) >= 2 else [wall[0]] * 9
    return {"p50_ms": round(statistics.median(wall), 1), "p90_ms": round(q[8], 1),
            "cpu_p50_ms": round(statistics.median(cpu), 1), "n": len(wall)}


def matmul_floor(model, layer: int, tokens: int, reps: int) -> float:
    """Sum over the linear layers of blocks 0..layer of the median time of one product with `tokens` rows."""
    import torch

    from target_models.targets.residual import decoder_layers

    total = 0.0
    with torch.inference_mode():
        for block in decoder_layers(model)[: layer + 1]:
            for lin in (m for m in block.modules() if isinstance(m, torch.nn.Linear)):
                x = torch.randn(tokens, lin.in_features, dtype=lin.weight.dtype)
                torch.nn.functional.linear(x, lin.weight)
                times = []
                for _ in range(reps):
                    t = time.perf_counter()
                    torch.nn.functional.linear(x, lin.weight)
                    times.append((time.perf_counter() - t) * 1000)
                total += statistics.median(times)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--organism", default="rm_sycophancy")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--sae", default=None, help="an SAE folder (default: the organism's own)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from target_models.interp.bundle import SAEBundle
    from target_models.loading.organism import open_organism
    from target_models.targets.templates import chat_ids
    from tools.interp import top_features
    from tools.registry import ToolContext

    org = open_organism(args.organism)
    target = org.load("organism")
    bundle = SAEBundle.load(args.sae) if args.sae else SAEBundle.for_organism(org)
    ctx = ToolContext(target=target, sae=bundle)
    tok = target.tokenizer
    convs = [conversation(tok, i, args.tokens) for i in range(args.reps + 3)]
    ids = [torch.tensor([chat_ids(tok, c)]) for c in convs]
    for i in range(3):  # warm-up: allocator, kernels, index pages
        top_features(ctx, conversation=convs[-1 - i])

    def full(i: int) -> None:
        with torch.inference_mode():
            target.model(input_ids=ids[i])

    def cold(i: int) -> None:
        top_features(ctx, conversation=convs[i])

    def warm(i: int) -> None:
        top_features(ctx, conversation=convs[0], offset=20 * (i % 5))

    ref, c, w = (stats(t) for t in timed([full, cold, warm], args.reps))
    floor = matmul_floor(target.model, bundle.layer, int(ids[0].shape[1]), args.reps)
    result = {
        "organism": org.spec.name, "preset": org.preset, "threads": args.threads,
        "tokens": int(ids[0].shape[1]), "layer": bundle.layer, "n_layers": target.model.config.num_hidden_layers,
        "d_sae": bundle.d_sae, "full_forward": ref, "top_features_cold": c, "top_features_next_page": w,
        "ratio_cold_to_full_forward": round(c["p50_ms"] / ref["p50_ms"], 3),
        "ratio_page_to_full_forward": round(w["p50_ms"] / ref["p50_ms"], 4),
        "matmul_floor_ms": round(floor, 1), "ratio_cold_to_matmul_floor": round(c["p50_ms"] / floor, 2),
        "target_cold_p50_ms": 150, "cold_within_target": c["p50_ms"] <= 150,
        "index_build_seconds": org.record.stages.get("features", {}).get("seconds"),
        "sae_build_seconds": org.record.stages.get("sae", {}).get("seconds"),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
