"""The offline investigator (no LLM): `agent.offline.investigator` holds it; the other modules are its parts."""
