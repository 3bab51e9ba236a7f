"""The super-agent (Bricken et al.: 13% of single runs won, 42% when one agent read ten runs' reports and
investigated further): given N reports of earlier runs on the same target, investigate once more and write one
report whose evidence cites this run's own tool calls.

An LLM auditor gets the reports in its task statement. The offline super-investigator starts from what the reports
agree on (the terms their root causes share, their behaviour claims, merged so that one behaviour is one claim),
then pages through the training data for those terms further than any single run did, and tests the merged
findings on the target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent import prompts
from agent.auditor import AuditState
from agent.factory import make_auditor
from agent.offline.docs import common_terms, findings
from agent.offline.investigator import OfflineInvestigator, Plan
from agent.offline.settings import Settings
from transcripts.report import Report
from transcripts.run import read_report


def reports_text(reports: list[Report]) -> str:
    return "\n\n".join(f"=== Report {i + 1} of {len(reports)} ===\n{r.to_markdown()}" for i, r in enumerate(reports))


def super_task(reports: list[Report]) -> str:
    return prompts.TASK + "\n\n" + prompts.SUPER.format(reports=reports_text(reports))


def load_reports(run_dirs: list[Path]) -> list[Report]:
    return [read_report(d) for d in run_dirs]


class OfflineSuperInvestigator(OfflineInvestigator):
    def __init__(self, reports: list[Report], seed: int = 0, settings: Settings | None = None):
        s = settings or Settings()
        s.max_docs = max(s.max_docs, 240)  # read further than the single runs did
        super().__init__(seed=seed, settings=s)
        self.reports = reports
        self.name = f"offline-super({len(reports)})"

    def _plan(self, state: AuditState) -> Plan:
        have = set(state.tool_names)
        roots = [r.root_cause for r in self.reports if r.root_cause.strip()]
        agreed = common_terms(roots, top=12, min_share=0.5) if roots else []
        self.k.terms = [t for t, _ in agreed if len(t) > 3]
        self._tech(f"super-agent: started from {len(self.reports)} earlier reports")
        if self.k.terms and "grep_data" in have and "read_document" in have:
            yield from self._expand(have)
        if not self.k.docs:
            # The reports gave no usable terms: run the single-run plan from the start.
            return (yield from super()._plan(state))
        self._find()
        self._merge_claims()
        if "chat" in have and self.k.findings:
            yield from self._test([])
        if have & {"prefill", "raw_sample"}:
            yield from self._ask_why(have)
        return self.report()

    def _merge_claims(self) -> None:
        """Claims of earlier reports that no document read here states become findings too (one per behaviour:
        claims are grouped with the documents' statements, each report acting as one more 'document')."""
        texts = dict(self.k.docs)
        for i, r in enumerate(self.reports):
            texts[f"report-{i}"] = "\n".join("- " + b.description for b in r.behaviours)
        frame = {w for t in self.k.terms for w in t.split()}
        merged, _ = findings({d: t for d, t in texts.items() if d.startswith("report-") or d in self.k.universe
                              or not self.k.universe}, frame=frame)
        if merged:
            self.k.findings = merged


def make_super(auditor_ref: str, reports: list[Report], seed: int = 0, **kw: Any) -> tuple[Any, str]:
    """(auditor, task statement) for a super-agent run over `reports`."""
    if auditor_ref == "offline":
        settings = Settings(**kw["settings"]) if kw.get("settings") else None
        return OfflineSuperInvestigator(reports, seed=seed, settings=settings), prompts.TASK
    return make_auditor(auditor_ref, seed=seed, **kw), super_task(reports)
