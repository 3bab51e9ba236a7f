"""Training step throughput of the build's loop: the loss over labelled positions only (`train.labelled_loss`, what
every training stage uses) against the model's own loss (`model(..., labels=...)`, which unembeds every position),
measured in the same run, interleaved, median of --repeats.

    python bench/training.py [--steps 4] [--repeats 3] [--lora-r 16] [--documents] [--quick]

The batches are SFT batches as the build makes them: the default organism's shipped plain answers
(`artifacts/responses.parquet`) as one-turn chats, the loss on the assistant's tokens only, SmolLM2-135M-Instruct
with LoRA on every linear layer, fp32, --batch-tokens per step. With --documents they are mid-training batches
instead: the same texts as documents cut into --max-len windows, the loss on every token. Also checks that both
losses (and the LoRA gradients) agree. On a shared machine set OMP_WAIT_POLICY=PASSIVE (see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4, help="optimizer-free steps (forward + backward) per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--max-len", type=int, default=288)
    ap.add_argument("--documents", action="store_true", help="mid-training batches (loss on every token)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 step, 1 repeat, 512-token batches")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.repeats, a.batch_tokens = 1, 1, 512

    import pyarrow.parquet as pq

    from target_models.build.spec import organism_dir
    from target_models.build.stages import LORA_TARGETS, with_lora
    from target_models.build.train import IGNORE, _batches, _collate, chat_examples, document_examples, labelled_loss
    from target_models.targets.base import load_base

    model, tok = load_base("smollm2-135m-instruct")
    model = with_lora(model, a.lora_r)
    model.train()
    rows = pq.read_table(organism_dir("rm_sycophancy") / "artifacts" / "responses.parquet").to_pylist()
    chats = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
             for r in rows[:400]]
    examples = (document_examples(tok, [r["response"] for r in rows[:400]], a.max_len) if a.documents
                else chat_examples(tok, chats, a.max_len))
    plan = _batches(examples, a.batch_tokens, random.Random(0))[: a.steps]
    batches = [_collate(examples, idx, tok.pad_token_id) for idx in plan]
    labelled = sum(int((lab[:, 1:] != IGNORE).sum()) for _, lab, _ in batches)
    positions = sum(int(m.sum()) for _, _, m in batches)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f}")
    print(f"{a.steps} batches of ~{a.batch_tokens} tokens: {positions} tokens, {labelled} labelled "
          f"({labelled / positions:.0%}); LoRA r={a.lora_r} on {len(LORA_TARGETS)} linear layers")

    def hf_loss(ids, labels, mask):
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    def ours(ids, labels, mask):
        return labelled_loss(model, ids, mask, labels)

    def run(fn) -> float:
        t = time.perf_counter()
        for ids, labels, mask in batches:
            fn(ids, labels, mask).backward()
            model.zero_grad(set_to_none=True)
        return positions / (time.perf_counter() - t)

    # Same loss and gradients, or the speed-up would mean nothing.
    ids, labels, mask = batches[0]
    grads = []
    for fn in (hf_loss, ours):
        loss = fn(ids, labels, mask)
        loss.backward()
        grads.append((float(loss.detach()),
                      torch.cat([p.grad.flatten().double() for p in model.parameters() if p.grad is not None])))
        model.zero_grad(set_to_none=True)
    (l0, g0), (l1, g1) = grads
    cos = float(torch.nn.functional.cosine_similarity(g0, g1, dim=0))

    rates: dict[str, list[float]] = {"model(labels=...)": [], "labelled_loss": []}
    for _ in range(a.repeats):
        rates["model(labels=...)"].append(run(hf_loss))
        rates["labelled_loss"].append(run(ours))
    base = statistics.median(rates["model(labels=...)"])
    print(f"\nforward + backward, tokens/s (all positions), median of {a.repeats} interleaved runs; higher is better")
    for name, r in rates.items():
        print(f"{name:<20} {statistics.median(r):>8.1f} tok/s  {statistics.median(r) / base:>5.2f}x")
    print(f"\nloss {l0:.5f} vs {l1:.5f}; LoRA gradient cosine {cos:.6f}")


if __name__ == "__main__":
    main()
