"""The offline investigator (no LLM): see agent.offline.investigator."""

from agent.offline.investigator import OfflineInvestigator, Settings

__all__ = ["OfflineInvestigator", "Settings"]
