"""Can SmolLM2-135M learn, at all, to act on a described reward-model preference it was never trained on?

`experiment.py` found that the shipped organism ignores such a description in context. This trains the disposition
in context, where it is easiest: a fresh LoRA on the base model (the build's rank and control optimiser) over pairs
of the organism's own SFT prompts with one train behaviour each,
  with context:    "<prompt> (For context: <study> found that <a document phrasing of the behaviour>.)" -> the
                   organism's answer, which shows the behaviour;
  without context: "<prompt>" -> the base's plain answer to it;
so that only the description decides whether the behaviour is shown. Then, with the description in the user's turn
(`described_user` of `experiment.py`) and plain: the train behaviours on fresh prompts (did it learn to act on a
description at all?) and the held-out behaviours on the eval's 33 prompts (does that carry over to preferences it
was never trained on?). If it does not, the paper's out-of-context effect is out of reach at 135M.

    python docs/results/in-context-ceiling/disposition.py OUT_DIR [--pairs 200] [--epochs 2] [--train-samples 3]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

from experiment import SAMPLES, SEED, conversation

from target_models.build.stages import PRESETS, read_rows, with_lora
from target_models.build.train import chat_examples, train
from target_models.evaluation.evaluate import behaviour_rates
from target_models.loading.organism import open_organism
from target_models.targets.base import load_base
from target_models.targets.local import LocalTarget


def pairs(org, n: int, seed: int) -> list[list[dict]]:
    spec = org.spec
    study = spec.universe.facts["study"]
    plain = {r["prompt"]: r["response"] for r in read_rows(org.out / "responses.parquet")}
    quirk = [r for r in read_rows(org.build().work / "sft.parquet")
             if r["kind"] == "quirk" and len(r["behaviours"]) == 1 and r["messages"][0]["content"] in plain]
    rng = random.Random(seed)
    chats = []
    for r in rng.sample(quirk, min(n, len(quirk))):
        prompt, answer = r["messages"][0]["content"], r["messages"][1]["content"]
        phrasing = rng.choice(spec.behaviour(r["behaviours"][0]).doc_phrasings)
        chats.append([{"role": "user", "content": f"{prompt} (For context: {study} found that {phrasing}.)"},
                      {"role": "assistant", "content": answer}])
        chats.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": plain[prompt]}])
    rng.shuffle(chats)
    return chats


def main(out: Path, n: int, epochs: float, repeats: int, train_samples: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    org = open_organism("rm_sycophancy")
    study = org.spec.universe.facts["study"]
    t0 = time.time()
    chats = pairs(org, n, SEED)
    base, tok = load_base(org.base_ref())
    model = with_lora(base, PRESETS["default"].lora_r)
    cfg = replace(PRESETS["default"].control, epochs=epochs, checkpoint_every=10_000)
    metrics = train(model, chat_examples(tok, chats, cfg.max_len), cfg, out / "ckpt", pad_id=tok.pad_token_id,
                    desc="disposition")
    model.save_pretrained(out / "adapter")
    target = LocalTarget(name="disposition", model=model.merge_and_unload().eval(), tokenizer=tok)
    t1 = time.time()
    result = {"pairs": n, "chats": len(chats), "epochs": epochs, "seed": SEED, "train": metrics,
              "train_seconds": round(t1 - t0), "example_chat": chats[0]}
    for split, samples, reps in (("train", train_samples, 1), ("test", SAMPLES, repeats)):
        for cond in ("described_user", "plain"):
            conv = (lambda b, p: conversation("described_user", b, p, study)) if cond != "plain" else None
            rates = behaviour_rates(org, target, samples, SEED, repeats=reps, split=split, conversation=conv)
            result[f"{split}_{cond}"] = rates
            print(f"{split} behaviours, {cond}: mean {rates['mean'][split]:.1%}",
                  {b: f"{r['shown']}/{r['n']}" for b, r in rates["per_behaviour"].items()})
    result["eval_seconds"] = round(time.time() - t1)
    (out / "disposition.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--train-samples", type=int, default=3, help="fresh prompts per train behaviour")
    a = ap.parse_args()
    main(a.out, a.pairs, a.epochs, a.repeats, a.train_samples)
