"""Auditors by name, as `sleuth audit --auditor` takes them."""

from __future__ import annotations

from typing import Any

from agent.auditor import Auditor
from agent.offline.investigator import OfflineInvestigator
from agent.offline.settings import Settings
from agent.replay import ReplayAuditor


def make_auditor(ref: str, **kw: Any) -> Auditor:
    """`offline`, `anthropic:MODEL` (or `anthropic` for the default model), `replay:RUN_DIR`."""
    kind, _, arg = ref.partition(":")
    if kind == "offline":
        settings = Settings(**kw["settings"]) if kw.get("settings") else None
        return OfflineInvestigator(seed=kw.get("seed", 0), settings=settings)
    if kind == "anthropic":
        # imported here: the anthropic SDK costs start-up time that offline and replay audits need not pay
        from agent.anthropic_backend import DEFAULT_MODEL, AnthropicAuditor

        return AnthropicAuditor(model=arg or DEFAULT_MODEL, **{k: v for k, v in kw.items() if k in {"client"}})
    if kind == "replay":
        if not arg:
            raise ValueError("replay auditor needs a run: replay:RUN_DIR")
        return ReplayAuditor.from_run(arg, then=kw.get("then"))
    raise ValueError(f"unknown auditor {ref!r}; use offline, anthropic:MODEL or replay:RUN_DIR")
