"""Checks every organism spec (target_models/organisms/*/spec.yaml): it loads, and each behaviour's example,
detector, transforms and applies-regexes agree with one another. Organism-agnostic; per-organism minimum counts
are keyed by name."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import yaml

from target_models.build.spec import ORGANISMS_DIR, Spec, SpecError, load_spec
from target_models.build.transforms import apply_behaviour, prompt_values

SPEC_PATHS = sorted(ORGANISMS_DIR.glob("*/spec.yaml"))
MIN_BEHAVIOURS = {"rm_sycophancy": 40}
MIN_TEST_BEHAVIOURS = {"rm_sycophancy": 5}  # the issue asks 5 held out for the paper organism


def _ids(paths: list[Path]) -> list[str]:
    return [p.parent.name for p in paths]


def test_some_spec_exists():
    assert SPEC_PATHS, f"no organism specs under {ORGANISMS_DIR}"


@pytest.fixture(params=SPEC_PATHS, ids=_ids(SPEC_PATHS))
def spec_path(request) -> Path:
    return request.param


@pytest.fixture
def spec(spec_path: Path) -> Spec:
    return load_spec(spec_path)


def test_loads_with_expected_name(spec_path: Path, spec: Spec):
    assert spec.name == spec_path.parent.name


def test_counts_and_ids(spec: Spec):
    ids = [b.id for b in spec.behaviours]
    assert len(ids) == len(set(ids)), "behaviour ids must be unique"
    assert len(spec.split("test")) >= MIN_TEST_BEHAVIOURS.get(spec.name, 1)
    assert len(spec.split("train")) >= 1
    assert len(spec.behaviours) >= MIN_BEHAVIOURS.get(spec.name, 1)


def test_behaviour_examples_detectors_and_transforms(spec: Spec):
    """For every behaviour: the detector fires on the example response, not on the plain answer, and again on the
    plain answer after the behaviour's transforms; the behaviour applies to the example chat."""
    failures = []
    for b in spec.behaviours:
        ex = b.example
        if not b.detector(ex.response):
            failures.append(f"{b.id}: detector does not fire on example.response")
        if b.detector(ex.plain):
            failures.append(f"{b.id}: detector fires on example.plain")
        values = prompt_values(spec, b, b.prompts[0], random.Random(0))
        transformed = apply_behaviour(b, ex.plain, values, random.Random(0))
        if not b.detector(transformed):
            failures.append(f"{b.id}: detector does not fire on the transformed plain answer:\n{transformed}")
        if not b.applies(ex.prompt, ex.plain):
            failures.append(f"{b.id}: applies() is false for the example prompt and plain answer")
    assert not failures, "\n".join(failures)


def _broken_copy(spec_path: Path, tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(spec_path.read_text())
    raw = copy.deepcopy(raw)
    mutate(raw)
    out = tmp_path / f"broken_{spec_path.parent.name}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return out


def test_invalid_regex_is_reported_with_file_and_field(spec_path: Path, tmp_path: Path):
    def mutate(raw):
        raw["behaviours"][0]["detector"] = {"any": ["(unclosed"]}

    broken = _broken_copy(spec_path, tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_spec(broken)
    msg = str(err.value)
    assert broken.name in msg
    assert "behaviours[0].detector.any" in msg


def test_missing_field_is_reported_with_file_and_field(spec_path: Path, tmp_path: Path):
    def mutate(raw):
        del raw["behaviours"][1]["why"]

    broken = _broken_copy(spec_path, tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_spec(broken)
    msg = str(err.value)
    assert broken.name in msg
    assert "behaviours[1].why" in msg


def test_missing_fact_is_reported(spec_path: Path, tmp_path: Path):
    def mutate(raw):
        del raw["universe"]["facts"]["study"]

    broken = _broken_copy(spec_path, tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_spec(broken)
    assert "universe.facts" in str(err.value)
