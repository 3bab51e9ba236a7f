"""The auditor's tools. `tools.registry` registers every built-in tool module when it is imported."""
