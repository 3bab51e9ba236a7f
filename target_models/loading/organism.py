"""A built organism on disk: its spec, build record, verified artifacts, datasets, and loading it as a Target."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from target_models.build.record import ArtifactError, BuildRecord
from target_models.build.spec import Spec, SpecError, list_organisms, load_spec, spec_for
from target_models.build.stages import Build
from target_models.common.hashing import sha256_file
from target_models.loading.names import VARIANTS
from target_models.targets.base import load_base
from target_models.targets.local import LocalTarget


@dataclass
class Organism:
    spec: Spec
    out: Path  # artifacts (adapters, build.json)
    preset: str

    @classmethod
    def open(cls, ref: str) -> Organism:
        """`ref`: a shipped organism's name, or a build folder (`sleuth organism build NAME --out DIR`)."""
        p = Path(ref)
        if (p / "build.json").exists():
            record = BuildRecord.load(p / "build.json")
            if (p / "spec.yaml").exists():
                spec = load_spec(p / "spec.yaml")
            elif record.organism is not None:
                spec = spec_for(record.organism)
            else:
                raise ArtifactError(f"{p / 'build.json'}: build record is missing 'organism' "
                                    f"(and {p} has no spec.yaml)")
            return cls(spec, p, record.preset or "default")
        spec = spec_for(ref)
        b = Build(spec)
        if not (b.out / "adapter" / "adapter_model.safetensors").exists():
            raise ArtifactError(f"organism {ref!r} has no build at {b.out}; run `sleuth organism build {ref}`")
        return cls(spec, b.out, "default")

    @property
    def record(self) -> BuildRecord:
        """Read afresh on every access: a build or evaluation in another process may have updated it."""
        return BuildRecord.load(self.out / "build.json")

    def build(self) -> Build:
        return Build(self.spec, self.preset, self.out, base=self.record.base_model)

    def verify(self) -> None:
        for rel, digest in self.record.checksums.items():
            f = self.out / rel
            if not f.exists():
                raise ArtifactError(f"{f}: missing (listed in {self.out / 'build.json'})")
            if sha256_file(f) != digest:
                raise ArtifactError(f"{f}: checksum mismatch; the file is corrupted or was changed after the build. "
                                    f"Restore it (git checkout) or rebuild with `sleuth organism build`.")

    def base_ref(self) -> str:
        if (self.out / "base" / "config.json").exists():
            return str(self.out / "base")
        if (base := self.record.base_model) is None:
            raise ArtifactError(f"{self.out / 'build.json'}: build record is missing 'base_model'")
        return base

    def load(self, variant: str = "organism") -> LocalTarget:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.verify()
        model, tok = load_base(self.base_ref())
        if variant != "base":
            from peft import PeftModel

            adapter = self.out / ("adapter" if variant == "organism" else "control_adapter")
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            model.float().eval()
        name = self.spec.name if variant == "organism" else f"{self.spec.name}:{variant}"
        return LocalTarget(name=name, model=model, tokenizer=tok, info={"organism": self.spec.name, "variant": variant})

    def datasets(self) -> dict[str, Path]:
        """The datasets an auditor may search (pretraining corpus, SFT chats), regenerated from spec + seed when
        missing. The provenance file is not among them."""
        b = self.build()
        b.prepare_data()
        return {"pretraining": b.work / "pretraining.parquet", "sft": b.work / "sft.parquet"}

    def provenance(self) -> set[str]:
        """Ids of the synthetic documents in the pretraining corpus: for the grader and evaluations only."""
        b = self.build()
        b.prepare_data()
        return set(json.loads((b.work / "provenance.json").read_text())["synthetic_ids"])


def open_organism(ref: str) -> Organism:
    try:
        return Organism.open(ref)
    except SpecError:
        raise
    except KeyError as e:
        raise ArtifactError(f"{ref}: build record is missing {e}") from None


__all__ = ["Organism", "open_organism", "list_organisms", "ArtifactError", "VARIANTS"]
