"""The `sleuth` command: assembles the verb modules into one app; no logic of its own.

Entry point: `sleuth = "sleuth._cli.main:app"` in pyproject.toml.
"""

from __future__ import annotations

import typer

from sleuth._cli.audit import audit_cmd, replay_cmd, score_cmd, view_cmd
from sleuth._cli.experiment import experiment_app
from sleuth._cli.organism import organism_app
from sleuth._cli.tool import tool_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Alignment audits for hidden objectives.")
app.add_typer(organism_app, name="organism")
app.add_typer(tool_app, name="tool")
app.add_typer(experiment_app, name="experiment")
app.command("score")(score_cmd)
app.command("view")(view_cmd)
app.command("audit")(audit_cmd)
app.command("replay")(replay_cmd)


if __name__ == "__main__":
    app()
