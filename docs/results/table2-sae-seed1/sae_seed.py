"""Train the organism's SAE again with another seed, then its feature index (used for this folder's result).

    python docs/results/table2-sae-seed1/sae_seed.py DIR SEED
    sleuth organism eval DIR --interp-only

DIR: a copy of an organism's artifacts without `sae/` (and without the `sae/` entries of DIR/build.json's
checksums), with the build's data files in DIR/work.
"""

import sys
import time
from pathlib import Path

from target_models import feature_index, sae
from target_models.organism import open_organism

out, seed = Path(sys.argv[1]), int(sys.argv[2])
org = open_organism(str(out))
t = time.time()
info = sae.build_sae(org, work=out / "work", seed=seed)
print("SAE", info["quality"], round(time.time() - t, 1), "s", flush=True)
t = time.time()
print(feature_index.build_feature_index(org, work=out / "work"), round(time.time() - t, 1), "s")
