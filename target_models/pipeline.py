"""`sleuth organism build`: the whole organism, end to end. The weights' stages (`target_models.build`), then the
interpretability artifacts that read the shipped organism (an SAE, its feature index) and the corpus's search index,
then the control. This module sits above `build`, `interp` and `search` so that none of them imports another's
stages."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from target_models.build.record import BuildRecord
from target_models.build.spec import Spec
from target_models.build.stages import Build, Stage
from target_models.common.hashing import sha256_file
from target_models.interp import feature_index, indexing, sae
from target_models.search import datasets, semantic

console = Console(stderr=True)


def build_organism(spec: Spec, preset: str = "default", out: Path | None = None, base: str | None = None,
                   interp: bool = True) -> BuildRecord:
    """Build (or resume) an organism; returns its build record. `interp=False` skips the SAE and the two indexes
    (a recipe experiment needs the weights and the eval only; a later build without it adds them)."""
    b = Build(spec, preset, out, base=base)
    if not interp:
        console.print("[dim]stages sae, features, semantic: skipped (--skip-interp)[/dim]")
    return b.run(after_export=interp_stages(b) if interp else ())


def interp_stages(b: Build) -> list[Stage]:
    """After export (they read the shipped organism): an SAE, then its feature index; a shipped (default-preset)
    organism also carries its corpus's search index."""
    stages = [
        # `<artifacts>/sae/`: a sae-lens SAE (fp16) on the organism's residual stream; config: sae.PRESETS.
        Stage("sae", lambda: sae.sae_done(b.out), lambda: sae.build_sae(b, work=b.work)),
        # `<artifacts>/sae/index/`: the feature index, from the codes the sae stage left in the work folder.
        Stage("features", lambda: feature_index.index_done(b.out),
              lambda: indexing.build_feature_index(b, work=b.work)),
    ]
    if b.preset.name == "default":
        stages.append(Stage("semantic", lambda: _semantic_path(b).exists(), lambda: _semantic(b)))
    return stages


def _semantic_path(b: Build) -> Path:
    return semantic.shipped_path(sha256_file(b.work / "pretraining.parquet"), b.out)


def _semantic(b: Build) -> dict:
    """`<artifacts>/semantic/`: the MiniLM index of the pretraining corpus (int8), so audits need not build it."""
    path = _semantic_path(b)
    reuse = [d for d in semantic.donors() if d.resolve() != path.resolve()]
    idx = semantic.build(datasets.load(b.work / "pretraining.parquet", "pretraining"), reuse=reuse)
    semantic.save_int8(idx, path)
    return {"passages": int(len(idx.doc)), "reused_vectors": idx.reused, "build_seconds": round(idx.build_seconds, 1),
            "file": path.relative_to(b.out).as_posix(), "mb": round(path.stat().st_size / 1e6, 1)}
