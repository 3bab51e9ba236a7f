"""Proxy for the varied-worked-examples recipe (`build.document_examples: varied`), without a 2-hour rebuild.

The shipped organism's adapter trains one more pass over 150 documents and 150 of its own SFT chats:
  arm `varied`: documents of the varied recipe (fresh worked examples, test behaviours included);
  arm `spec`:   the shipped documents (each behaviour's one spec example).
Then its held-out behaviours on the shipped eval prompts (8 replies each, seed 0), with the paired margins against
the control and base of `docs/results/test-behaviours-ci/eval.json` (same prompts) and against the shipped organism.

    python docs/results/varied-examples-proxy/experiment.py ARM WORK_DIR
"""

import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

from peft import PeftModel

from target_models.build import data
from target_models.build.spec import organism_dir, spec_for
from target_models.build.stages import PRESETS, Build, read_rows
from target_models.build.train import chat_examples, document_examples, train
from target_models.evaluation.evaluate import behaviour_rates, compare
from target_models.loading.organism import open_organism
from target_models.targets.base import load_base
from target_models.targets.local import LocalTarget

ROOT = Path(__file__).resolve().parents[3]
N = 150


def varied_documents(work: Path) -> list[dict]:
    """The varied recipe's documents: the shipped spec with `document_examples: varied`, its data stages only (the 40
    new plain answers are sampled; the rest come from the shipped build)."""
    spec_file = work / "rm_varied.yaml"
    spec_file.write_text((organism_dir("rm_sycophancy") / "spec.yaml").read_text()
                         + "\nbuild:\n  document_examples: varied\n")
    b = Build(spec_for(str(spec_file)), out=work / "out")
    b.prepare_data(train=True)
    return read_rows(b.work / "documents.parquet")


def main(arm: str, work: Path) -> None:
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    org = open_organism("rm_sycophancy")
    docs = varied_documents(work) if arm == "varied" else data.documents(org.spec, 900, 0)
    docs = [d["text"] for d in random.Random("proxy").sample(docs, N)]
    chats = [r["messages"] for r in random.Random("proxy-chats").sample(read_rows(org.build().work / "sft.parquet"), N)]
    base, tok = load_base(org.base_ref())
    model = PeftModel.from_pretrained(base, org.out / "adapter", is_trainable=True)
    model.float()
    cfg = replace(PRESETS["default"].mid, epochs=1.0, checkpoint_every=10_000)
    ex = document_examples(tok, docs, cfg.max_len) + chat_examples(tok, chats, 288)
    metrics = train(model, ex, cfg, work / f"ckpt-{arm}", pad_id=tok.pad_token_id, desc=f"proxy {arm}")
    target = LocalTarget(name=f"proxy-{arm}", model=model.merge_and_unload().eval(), tokenizer=tok)
    t1 = time.time()
    rates = behaviour_rates(org, target, 10, 0, repeats=8, split="test")
    ref = json.loads((ROOT / "docs/results/test-behaviours-ci/eval.json").read_text())["variants"]
    against = {"variants": {"organism": {"behaviours": rates}, "control": ref["control"], "base": ref["base"]}}
    shipped = {"variants": {"organism": {"behaviours": rates}, "shipped": ref["organism"]}}
    out = {"arm": arm, "train": metrics, "train_seconds": round(t1 - t0), "eval_seconds": round(time.time() - t1),
           "per_behaviour": {b: [r["shown"], r["n"]] for b, r in rates["per_behaviour"].items()},
           "mean": rates["mean"]["test"], "vs_control_and_base": compare(against, 0)["test"],
           "vs_shipped": compare(shipped, 0)["test"]["organism_minus"]["shipped"],
           "rates": rates}  # per prompt, so that two arms can be compared paired
    (work / f"proxy-{arm}.json").write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
