"""Train a shipped organism's SAE again with another seed, then its feature index (this folder's result):

    python docs/results/table2-sae-seed1/sae_seed.py rm_sycophancy DIR 1
    sleuth organism eval DIR --interp-only

DIR gets a copy of the organism's artifacts without its SAE; the build's data files come along when the organism's
`build/` folder has them (after any audit or eval), otherwise the data stages regenerate them.
"""

import shutil
import sys
import time
from pathlib import Path

from target_models.build.record import BuildRecord
from target_models.build.spec import organism_dir
from target_models.interp import indexing, sae
from target_models.loading.organism import open_organism


def prepare(name: str, out: Path) -> None:
    src = organism_dir(name)
    shutil.copytree(src / "artifacts", out, ignore=shutil.ignore_patterns("sae", "interp.*"))
    record = BuildRecord.load(out / "build.json")
    record.checksums = {k: v for k, v in record.checksums.items() if not k.startswith("sae/")}
    record.save(out / "build.json")
    (out / "work").mkdir()
    for f in [*(src / "build").glob("*.parquet"), src / "build" / "provenance.json"]:
        if f.exists():
            shutil.copy2(f, out / "work" / f.name)


if __name__ == "__main__":
    name, out, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    prepare(name, out)
    org = open_organism(str(out))
    t = time.time()
    info = sae.build_sae(org, work=out / "work", seed=seed)
    print("SAE", info["quality"], round(time.time() - t, 1), "s", flush=True)
    t = time.time()
    print(indexing.build_feature_index(org, work=out / "work"), round(time.time() - t, 1), "s")
