"""The build record (`build.json` in a build's artifacts folder): what an organism was built from and what the build
made, so that a killed build resumes, a fresh clone checks the data it regenerates against the data the weights were
trained on, and loaders verify the shipped files.

It holds the config (organism, preset, base model, dataset sizes, the preset's training settings, the spec's hash and
the package versions), the seed, one entry per stage (data hashes, training metrics, seconds), the sha256 of every
artifact loaders trust, and the total build time. `BuildRecord.load(path)` reads one and `record.save(path)` writes it
atomically, in the format builds have always written (`json.dumps(indent=2, sort_keys=True)`). Keys this code does
not know are kept and keys a record never had are not added, so an older record loads and saves back unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from target_models.common.atomic import tmp_sibling


class ArtifactError(RuntimeError):
    """A build's files or regenerated data do not match its record, or the record itself cannot be read."""


class BuildRecord(BaseModel):
    """Every field is optional: a build in progress has only some of them, and a record saves only the fields it was
    loaded with or was given since (`model_dump(exclude_unset=True)`), so assign fields rather than mutate them in
    place (`record.stages = {**record.stages, name: entry}`)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    organism: str | None = None
    preset: str | None = None  # a preset name ("default", "tiny"); readers treat a missing one as "default"
    seed: int | None = None
    base_model: str | None = None  # a Hugging Face name, or "tiny-from-scratch" (the tiny preset's own base)
    spec_sha256: str | None = None
    sizes: dict[str, int] = Field(default_factory=dict)  # documents, chats per behaviour, generic and secrecy chats
    preset_config: dict[str, Any] = Field(default_factory=dict)  # dataclasses.asdict of the Preset
    versions: dict[str, str] = Field(default_factory=dict)  # torch, transformers, peft, tokenizers
    stages: dict[str, dict[str, Any]] = Field(default_factory=dict)  # stage name -> its entry (each has "seconds")
    checksums: dict[str, str] = Field(default_factory=dict)  # path relative to the artifacts folder -> sha256
    total_seconds: float | None = None  # set once every stage has run

    @classmethod
    def load(cls, path: Path | str) -> BuildRecord:
        path = Path(path)
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{path}: not a build record (invalid JSON: {e})") from None
        except ValidationError as e:
            why = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'the record'}: {err['msg']}" for err in e.errors())
            raise ArtifactError(f"{path}: not a valid build record ({why})") from None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_unset=True), indent=2, sort_keys=True)

    def save(self, path: Path | str) -> None:
        """Write to a temporary file beside `path`, then rename it into place: a reader never sees half a record."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(path)
        tmp.write_text(self.to_json())
        tmp.replace(path)


__all__ = ["ArtifactError", "BuildRecord"]
