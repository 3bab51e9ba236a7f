"""The tiny organism's own SAE and feature index, made by the real build stages "sae" and "features" (the
`tiny_build` fixture runs them once; the build folder is cached), shared by the test_interp* modules."""

from __future__ import annotations

from pathlib import Path


def tiny_sae(org) -> tuple[Path, dict, dict]:
    """(SAE folder, sae stage record, features stage record)."""
    from target_models.interp.feature_index import index_done
    from target_models.interp.sae import sae_dir

    stages = org.record.stages
    if not ("sae" in stages and "features" in stages and index_done(org.out)):
        raise RuntimeError(f"{org.out}: the build stages sae/features have not run (the tiny_build fixture runs them)")
    return sae_dir(org.out), stages["sae"], stages["features"]
