"""Shared fixtures: one real tiny organism (built from scratch by the real pipeline, ~2 min, cached by the hash of
the code and spec that made it) serves every test that needs a model."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
BUILD_FILES = ("spec.py", "data.py", "transforms.py", "train.py", "tiny.py", "corpus.py", "genres.yaml",
               "generic_prompts.txt")


def _code_hash(name: str) -> str:
    h = hashlib.sha256()
    # Only what shapes a build: editing evaluation or loading code must not trigger a rebuild.
    tm = ROOT / "target_models"
    files = [tm / "build" / f for f in BUILD_FILES] + [tm / "organisms" / name / "spec.yaml"]
    for f in files:
        h.update(f.read_bytes())
    from target_models.build.stages import PRESETS

    h.update(repr(PRESETS["tiny"]).encode())  # build.py's other presets must not invalidate the tiny cache
    return h.hexdigest()[:12]


def tiny_build_dir(name: str) -> Path:
    from target_models.build.spec import spec_for
    from target_models.common.atomic import exclusive
    from target_models.pipeline import build_organism
    from target_models.targets.base import cache_dir

    out = cache_dir() / "builds" / f"{name}-tiny-{_code_hash(name)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test sessions (and people) share the cache: one builds, the others wait for it.
    with exclusive(out.parent / f"{out.name}.lock", f"building {out.name}"):
        build_organism(spec_for(name), "tiny", out)  # resumes; a finished build is only checked
    return out


@pytest.fixture(scope="session")
def tiny_build() -> Path:
    return tiny_build_dir("rm_sycophancy")


@pytest.fixture(scope="session")
def tiny_organism(tiny_build):
    from target_models.loading.organism import open_organism

    return open_organism(str(tiny_build))


@pytest.fixture(scope="session")
def tiny_target(tiny_organism):
    return tiny_organism.load("organism")
