"""Device run: full build of the varied-examples recipe (data prepared on the CPU), then its evals.

Env: ROOT (writable folder holding varied/ and shipped_build/), OUT (results), DRY=1 (tiny epochs and samples, to
check the flow on a CPU)."""

import json
import os
import shutil
import sys
import tarfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.getcwd())
from target_models.build.spec import spec_for  # noqa: E402
from target_models.build.stages import Build  # noqa: E402
from target_models.evaluation.evaluate import evaluate  # noqa: E402
from target_models.loading.references import organism as om

ROOT, OUT, DRY = Path(os.environ["ROOT"]), Path(os.environ["OUT"]), os.environ.get("DRY") == "1"
T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def verify(self) -> None:  # this tree travels without the SAE and search index: skip those files only
    for rel, digest in self.record.checksums.items():
        f = self.out / rel
        if rel.startswith(("sae/", "semantic/")) and not f.exists():
            continue
        if om.sha256_file(f) != digest:
            raise om.ArtifactError(f"{f}: checksum mismatch")


om.Organism.verify = verify

# 1. Build: mid-training, SFT, export; control reused from the shipped twin. No SAE or indexes (CPU work later).
b = Build(spec_for(str(ROOT / "varied" / "rm_varied.yaml")), out=ROOT / "varied" / "out")
if DRY:
    b.preset = replace(b.preset, mid=replace(b.preset.mid, epochs=0.02), sft=replace(b.preset.sft, epochs=0.01))
_stage = b._stage


def stage(name, done, run):
    if name in ("sae", "features", "semantic"):
        log(f"skip {name}")
        return
    log(f"stage {name}")
    _stage(name, done, run)


b._stage = stage
b.run()
log("built")
with tarfile.open(OUT / "varied-adapter.tgz", "w:gz") as t:
    for rel in ("adapter", "build.json", "spec.yaml"):
        t.add(b.out / rel, arcname=rel)
    t.add(b.work / "mid", arcname="work/mid")

samples, repeats = (1, 1) if DRY else (10, 8)
org = om.open_organism(str(b.out))


def step(name, fn):
    try:
        t = time.time()
        r = fn()
        r["device_seconds"] = round(time.time() - t, 1)
        (OUT / f"{name}.json").write_text(json.dumps(r, indent=1))
        log(f"{name}: means " + json.dumps({v: x["behaviours"]["mean"] for v, x in r["variants"].items()}))
    except Exception:
        traceback.print_exc()


# 2. Held-out behaviours, organism vs control vs base (the number issue 2 asks for).
step("test-varied", lambda: evaluate(org, samples=samples, repeats=repeats, split="test", out=ROOT / "res" / "tv"))
# 4. The rest of the eval for the varied organism only (control and base are the shipped ones: same weights).
step("full-varied", lambda: evaluate(org, samples=1 if DRY else 10, variants=("organism",), out=ROOT / "res" / "fv"))
# 3. The shipped organism on the same prompts, same device (a paired recipe comparison).
sb = om.open_organism("rm_sycophancy").build().work
sb.mkdir(parents=True, exist_ok=True)
if not (sb / "haystack.parquet").exists():
    shutil.copy2(b.work / "haystack.parquet", sb / "haystack.parquet")
step("test-shipped", lambda: evaluate(om.open_organism("rm_sycophancy"), samples=samples, repeats=repeats,
                                      split="test", variants=("organism",), out=ROOT / "res" / "ts"))
mods = sorted({m.split(".")[0] for m in sys.modules if not m.startswith("_")})
log("modules: " + " ".join(mods))
