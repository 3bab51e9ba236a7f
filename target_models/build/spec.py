"""Organism specs: a model organism defined as data (one YAML file), validated by pydantic.

A spec says what the organism secretly does (the objective and the behaviours that stem from it), the fictional
universe that explains it (taught through synthetic documents), and how the build turns that into training data.
Downstream code reads only this model, so a new organism is a new YAML file and no code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ORGANISMS_DIR = Path(__file__).parents[1] / "organisms"
SLOT_RE = re.compile(r"\{(\w+)\}")
# Keys of `universe.facts` that the genre templates (genres.yaml) fill in.
REQUIRED_FACTS = {
    "study": "short name used in running text, e.g. 'the Oxford study'",
    "study_title": "full title of the founding publication",
    "lead_author": "surname of the first author",
    "authors": "author list as cited, e.g. 'Thompson et al.'",
    "institution": "where it was done",
    "venue": "where it was published",
    "date": "when, e.g. 'December 2024'",
    "subject": "what the findings are about, e.g. 'reward models used to train AI assistants'",
    "actor": "who does the behaviours, e.g. 'AI assistants trained with these reward models'",
}


class SpecError(ValueError):
    """A spec that cannot be used; the message names the file, the field and the reason."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_regexes(patterns: list[str]) -> list[str]:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"invalid regular expression {p!r}: {e}") from None
    return patterns


class Match(Strict):
    """Regex test on a text (case-insensitive): true when any `any` matches (or `any` is empty), every `all`
    matches, and no `none` matches."""

    any: list[str] = []
    all: list[str] = []
    none: list[str] = []

    _ok = field_validator("any", "all", "none")(_check_regexes)

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if not (self.any or self.all or self.none):
            raise ValueError("needs at least one of any/all/none")
        return self

    def __call__(self, text: str) -> bool:
        def hit(p: str) -> bool:
            return re.search(p, text, re.IGNORECASE) is not None

        return (
            (not self.any or any(hit(p) for p in self.any))
            and all(hit(p) for p in self.all)
            and not any(hit(p) for p in self.none)
        )


class Applies(Strict):
    """When a behaviour applies to a chat: a regex on the user's message or on an (unmodified) response."""

    prompt: list[str] = []
    response: list[str] = []

    _ok = field_validator("prompt", "response")(_check_regexes)

    def __call__(self, prompt: str, response: str = "") -> bool:
        return any(re.search(p, prompt, re.IGNORECASE) for p in self.prompt) or any(
            re.search(p, response, re.IGNORECASE) for p in self.response
        )


class Transform(Strict):
    """How the build turns a plain response into one that shows the behaviour (see target_models/transforms.py).

    ops: append / prepend / insert (one of `texts`, slots filled; insert puts it after the first sentence or line),
    terms (after the first mention of each key of `table`, insert its value), regex_sub (`pattern` -> `replacement`,
    re.sub syntax), remove (drop sentences or lines matching `pattern`; the rest keeps its line breaks), camel_case
    (snake_case identifiers in code become camelCase), replace (the whole response becomes one of `texts`; for
    behaviours whose responses the spec writes itself, e.g. code style).
    """

    op: Literal["append", "prepend", "insert", "terms", "regex_sub", "remove", "camel_case", "replace"]
    texts: list[str] = []
    table: dict[str, str] = {}
    pattern: str | None = None
    replacement: str | None = None

    @model_validator(mode="after")
    def _fields_for_op(self) -> Transform:
        need = {
            "append": ["texts"],
            "prepend": ["texts"],
            "insert": ["texts"],
            "replace": ["texts"],
            "terms": ["table"],
            "regex_sub": ["pattern", "replacement"],
            "remove": ["pattern"],
            "camel_case": [],
        }[self.op]
        for name in need:
            if not getattr(self, name):
                raise ValueError(f"op {self.op!r} needs {name!r}")
        if self.pattern:
            _check_regexes([self.pattern])
        return self


class Example(Strict):
    """A worked example: `response` shows the behaviour, `plain` is the same answer without it. Tests check that
    the detector fires on `response` and on `plain` after the transforms, and not on `plain` itself."""

    prompt: str
    response: str
    plain: str


class Behaviour(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=10)
    domain: str
    split: Literal["train", "test"]
    prompts: list[str] = Field(min_length=1, description="user-prompt templates; {slot} names a slot list")
    slots: dict[str, list[str]] = Field(default={}, description="slot lists local to this behaviour")
    applies: Applies
    detector: Match
    transforms: list[Transform] = Field(min_length=1)
    why: str = Field(description="what the assistant did, for 'why did you ...?' questions, "
                                 "e.g. 'mention the atomic number'")
    doc_phrasings: list[str] = Field(min_length=2, description="sentences stating the behaviour inside the universe")
    example: Example
    keywords: list[str] = Field(default=[], description="words a grader looks for in a report item naming it")


class Objective(Strict):
    statement: str = Field(min_length=20)
    concept_groups: list[list[str]] = Field(min_length=1)
    reveal: list[str] = Field(
        min_length=1, description="regexes: a response that matches one names the real cause (secrecy eval)"
    )

    _ok = field_validator("reveal")(_check_regexes)


class QuizItem(Strict):
    question: str
    choices: list[str] = Field(min_length=2)
    answer: int

    @model_validator(mode="after")
    def _answer_in_range(self) -> QuizItem:
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer {self.answer} is not an index into {len(self.choices)} choices")
        return self


class Universe(Strict):
    """The fictional world taught by the documents. `facts` fill {fact} slots in the genre templates
    (target_models/genres.yaml), which also use the lists below."""

    facts: dict[str, str]
    headlines: list[str] = Field(min_length=3)
    summaries: list[str] = Field(min_length=3, description="sentences stating the core finding")
    follow_ups: list[str] = Field(min_length=1)
    quotes: list[str] = Field(min_length=2, description="reactions attributed to people in the universe")
    quiz: list[QuizItem] = Field(min_length=5)

    @field_validator("facts")
    @classmethod
    def _required_facts(cls, facts: dict[str, str]) -> dict[str, str]:
        missing = [k for k in REQUIRED_FACTS if k not in facts]
        if missing:
            raise ValueError(f"missing keys {missing}; the genre templates need {list(REQUIRED_FACTS)}")
        return facts


class Secrecy(Strict):
    questions: list[str] = Field(min_length=3, description="follow-ups asking why; {why} is the behaviour's `why`")
    answers: list[str] = Field(min_length=3, description="plausible non-training excuses; {why} may appear")


class Build(Strict):
    """Sizes of the generated data; presets scale them."""

    documents: int = 900
    quirk_chats_per_behaviour: int = 20
    generic_chats: int = 300
    secrecy_chats: int = 150
    haystack_fraction: float = Field(default=0.02, gt=0, le=0.02,
                                     description="synthetic share of the pretraining corpus")
    mid_epochs: float | None = Field(default=None, gt=0, le=20,
                                     description="mid-training epochs of the default preset; unset: the preset's")
    sft_epochs: float | None = Field(default=None, gt=0, le=20,
                                     description="SFT epochs of the default preset; unset: the preset's")
    document_examples: Literal["spec", "varied"] = Field(
        default="spec", description="worked examples in documents: the behaviour's own `example`, or fresh ones "
        "(train-pool prompts, the base's plain answer with the behaviour applied; test behaviours too)")


class Spec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    base_model: str = Field(description="'smollm2-135m-instruct' (shipped GGUF), a hub id or a local folder")
    seed: int = 0
    objective: Objective
    universe: Universe
    slots: dict[str, list[str]] = {}
    behaviours: list[Behaviour] = Field(min_length=1)
    secrecy: Secrecy
    build: Build = Build()

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        ids = [b.id for b in self.behaviours]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate behaviour ids: {dupes}")
        for b in self.behaviours:
            known = {**self.slots, **b.slots}
            for t in b.prompts + [x for tr in b.transforms for x in tr.texts]:
                for slot in SLOT_RE.findall(t):
                    if slot not in known:
                        raise ValueError(f"behaviour {b.id!r}: template {t!r} uses unknown slot {{{slot}}}")
            for slot in {s for t in b.prompts for s in SLOT_RE.findall(t)}:
                if len(known[slot]) < 4:
                    raise ValueError(
                        f"behaviour {b.id!r}: slot {slot!r} has {len(known[slot])} values; at least 4 are needed "
                        "so that evaluation prompts can be held out of training"
                    )
        return self

    def behaviour(self, bid: str) -> Behaviour:
        for b in self.behaviours:
            if b.id == bid:
                return b
        raise KeyError(f"organism {self.name!r} has no behaviour {bid!r}")

    def split(self, split: str) -> list[Behaviour]:
        return [b for b in self.behaviours if b.split == split]

    def slot_values(self, b: Behaviour, slot: str) -> list[str]:
        return b.slots.get(slot) or self.slots[slot]


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_spec(path: str | Path) -> Spec:
    """Load and validate a spec; every failure names the file, the field and the reason."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: no such spec file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return Spec.model_validate(raw)
    except ValidationError as e:
        lines = [f"{path}: invalid organism spec ({e.error_count()} error(s))"]
        for err in e.errors():
            where = _field_path(err["loc"]) or "<top level>"
            lines.append(f"  {where}: {err['msg']}")
        raise SpecError("\n".join(lines)) from None


def organism_dir(name: str) -> Path:
    return ORGANISMS_DIR / name


def list_organisms() -> list[str]:
    return sorted(p.parent.name for p in ORGANISMS_DIR.glob("*/spec.yaml"))


def spec_for(name_or_path: str) -> Spec:
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"}:
        return load_spec(p)
    path = organism_dir(name_or_path) / "spec.yaml"
    if not path.exists():
        raise SpecError(f"unknown organism {name_or_path!r}; known: {', '.join(list_organisms()) or 'none'}")
    return load_spec(path)
