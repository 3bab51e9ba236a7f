"""Target sampling throughput: target_models.targets.sampling.sample (what every chat tool calls) against plain
`model.generate`, measured in the same run, interleaved, median of --repeats.

    python bench/sampling.py [--tokens 32] [--repeats 3] [--target REF] [--quick]

--quick: a smoke run (8 tokens, 16-token replies, 1 repeat): checks that everything runs, numbers are rough.

Rows:
- batch 1 (greedy): one reply of exactly --tokens tokens; also checks that both produce the same tokens.
- chat n=8 (fixed length): 8 replies to one prompt of exactly --tokens tokens each; 8 sequential generate calls vs
  one batched sample call (what the chat tool does for n=8).
- chat n=8 (real replies): the same, but replies end at the end of the turn (up to --reply-tokens), as in an audit.
On a shared machine set OMP_WAIT_POLICY=PASSIVE (measured there: 2-30x faster for both sides, see bench/README.md).
Uses the default organism when it is built, else the base model smollm2-135m-instruct (the output says which).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a short poem about the sea, then explain what it means."}]


def default_target() -> tuple[str, str]:
    from target_models.build.spec import organism_dir

    built = organism_dir("rm_sycophancy") / "artifacts" / "adapter" / "adapter_model.safetensors"
    if built.exists():
        return "rm_sycophancy", "default organism rm_sycophancy (SmolLM2-135M-Instruct + merged LoRA)"
    return "smollm2-135m-instruct", "base model smollm2-135m-instruct (the default organism is not built yet)"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reply-tokens", type=int, default=96, help="max tokens of the real-reply case")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--target", default=None, help="target reference (default: the default organism, else the base)")
    ap.add_argument("--quick", action="store_true", help="smoke run: --tokens 8 --reply-tokens 16 --repeats 1")
    a = ap.parse_args()
    if a.quick:
        a.tokens, a.reply_tokens, a.repeats = 8, 16, 1
    if a.threads:
        torch.set_num_threads(a.threads)

    from target_models.loading.references import load_target
    from target_models.targets.sampling import sample

    ref, label = (a.target, a.target) if a.target else default_target()
    t0 = time.perf_counter()
    target = load_target(ref)
    print(f"target: {label}; loaded in {time.perf_counter() - t0:.1f} s")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    model, tok, n = target.model, target.tokenizer, a.tokens
    ids = target.render(PROMPT)
    x = torch.tensor([ids])
    pad = tok.pad_token_id

    def generate(do_sample: bool, seed: int = 0) -> list[int]:
        torch.manual_seed(seed)
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                             do_sample=do_sample, temperature=1.0 if do_sample else None, top_p=None, top_k=None,
                             pad_token_id=pad)
        return out[0, len(ids):].tolist()

    def ours(batch: int, temperature: float) -> list[list[int]]:
        return sample(model, [ids] * batch, max_new_tokens=n, temperature=temperature, stop_ids=set(), pad_id=pad,
                      seed=0)

    stops = sorted(target.stop_ids)

    def generate_real(seed: int) -> int:
        torch.manual_seed(seed)
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=a.reply_tokens, do_sample=True,
                             temperature=1.0, top_p=None, top_k=None, pad_token_id=pad, eos_token_id=stops)
        return sum(1 for t in out[0, len(ids):].tolist() if t not in stops and t != pad)

    def ours_real() -> int:
        outs = sample(model, [ids] * 8, max_new_tokens=a.reply_tokens, temperature=1.0, stop_ids=set(stops),
                      pad_id=pad, seed=0)
        return sum(len(o) for o in outs)

    def rate(fn) -> float:
        t = time.perf_counter()
        made = fn()
        return made / (time.perf_counter() - t)

    # Same greedy tokens, or the speed-up would mean nothing.
    same = generate(False) == ours(1, 0.0)[0]
    cases = {
        "batch 1 (greedy)": (lambda: n / timed(lambda: generate(False)), lambda: n / timed(lambda: ours(1, 0.0))),
        "chat n=8 (fixed length)": (lambda: 8 * n / timed(lambda: [generate(True, s) for s in range(8)]),
                                    lambda: 8 * n / timed(lambda: ours(8, 1.0))),
        "chat n=8 (real replies)": (lambda: rate(lambda: sum(generate_real(s) for s in range(8))),
                                    lambda: rate(ours_real)),
    }
    rows: dict[str, tuple[list[float], list[float]]] = {c: ([], []) for c in cases}
    for _ in range(a.repeats):
        for case, (base_fn, new_fn) in cases.items():
            rows[case][0].append(base_fn())
            rows[case][1].append(new_fn())

    print(f"\nfixed length: {n} new tokens per reply; real replies: up to {a.reply_tokens}, stopping at the end of "
          f"the turn. Median of {a.repeats} interleaved runs; tokens/s, higher is better.")
    print(f"{'case':<26} {'model.generate':>15} {'sample()':>10} {'ratio':>7}")
    for case, (base, new) in rows.items():
        b, s = statistics.median(base), statistics.median(new)
        print(f"{case:<26} {b:>15.1f} {s:>10.1f} {s / b:>6.2f}x")
    print(f"\ngreedy tokens identical to model.generate: {'yes' if same else 'NO'}")
    print("targets: chat n=8 >= 4x; batch 1 aim >= 3x. The generate side of chat n=8 is 8 sequential calls.")


if __name__ == "__main__":
    main()
