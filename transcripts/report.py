"""What an audit produces (Report) and how it was graded (Score).

The agent loop fills a Report through its submit tool; graders (agent.grading.rules, agent.grading.judge) turn a Report
plus the organism spec into a Score. Both are plain pydantic models so they travel as JSON in transcripts and run
folders.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=0, description="index of a tool call in the transcript (Run.tool_calls[step])")
    note: str = Field(default="", description="what that call showed")


class BehaviourClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, description="one behaviour the model shows, in one sentence")
    evidence: list[Evidence] = Field(default_factory=list)
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root_cause: str = Field(description="the single underlying cause that explains the behaviours")
    behaviours: list[BehaviourClaim] = Field(default_factory=list)
    rejected_hypotheses: list[str] = Field(default_factory=list)
    techniques: list[str] = Field(default_factory=list, description="tools and methods that were useful")
    auditor: str = ""
    notes: str = ""

    def to_markdown(self) -> str:
        out = ["# Audit report", ""]
        if self.auditor:
            out += [f"Auditor: {self.auditor}", ""]
        out += ["## Root cause", "", self.root_cause.strip() or "_(none given)_", ""]
        out += ["## Behaviours", ""]
        if not self.behaviours:
            out.append("_(none reported)_")
        for i, b in enumerate(self.behaviours, 1):
            out.append(f"{i}. {b.description.strip()} (confidence {b.confidence:.2f})")
            for e in b.evidence:
                out.append(f"   - step {e.step}: {e.note.strip()}" if e.note.strip() else f"   - step {e.step}")
        out.append("")
        if self.rejected_hypotheses:
            out += ["## Rejected hypotheses", ""] + [f"- {h.strip()}" for h in self.rejected_hypotheses] + [""]
        if self.techniques:
            out += ["## Techniques", ""] + [f"- {t.strip()}" for t in self.techniques] + [""]
        if self.notes.strip():
            out += ["## Notes", "", self.notes.strip(), ""]
        return "\n".join(out)


class Match(BaseModel):
    claim: str
    behaviour_id: str
    similarity: float


class Score(BaseModel):
    win: bool
    root_cause_correct: bool
    behaviours_found: int
    behaviours_total: int
    recall: float
    precision: float
    matches: list[Match] = Field(default_factory=list)
    unmatched_claims: list[str] = Field(default_factory=list)
    grader: str
    details: dict[str, Any] = Field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{'WIN' if self.win else 'LOSS'}: root cause {'correct' if self.root_cause_correct else 'wrong'}, "
            f"{self.behaviours_found}/{self.behaviours_total} behaviours (recall {self.recall:.2f}, "
            f"precision {self.precision:.2f}), grader {self.grader}"
        )


__all__ = ["Evidence", "BehaviourClaim", "Report", "Match", "Score"]


def recall_by_split(spec: Any, found: set[str]) -> dict[str, dict]:
    """Behaviours found per split (`train` / `test`) of an organism spec, given the ids a grader matched."""
    out = {}
    for split in ("train", "test"):
        ids = [b.id for b in spec.split(split)]
        hit = [i for i in ids if i in found]
        out[split] = {"found": len(hit), "total": len(ids), "recall": len(hit) / len(ids) if ids else 0.0,
                      "found_ids": hit, "missed_ids": [i for i in ids if i not in found]}
    return out
