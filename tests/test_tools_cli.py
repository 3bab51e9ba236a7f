"""`sleuth tool` from the shell (typer's CliRunner), on the real tiny organism."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sleuth._cli.main import app

runner = CliRunner()
HI = json.dumps({"messages": [{"role": "user", "content": "How do I bake bread?"}], "n": 2, "max_tokens": 6})


def test_tool_list_and_toolsets():
    r = runner.invoke(app, ["tool", "list"])
    assert r.exit_code == 0
    for name in ("chat", "prefill", "raw_sample", "sample_user_turn", "grep_data", "semantic_search", "todo"):
        assert name in r.stdout
    r = runner.invoke(app, ["tool", "list", "--toolset", "chat+grep"])
    assert r.exit_code == 0 and "grep_data" in r.stdout and "semantic_search" not in r.stdout
    r = runner.invoke(app, ["tool", "list", "--toolset", "nope"])
    assert r.exit_code == 2 and "unknown toolset" in r.stderr


def test_schema_and_argument_errors_exit_2_before_loading_anything():
    r = runner.invoke(app, ["tool", "chat", "--schema"])
    assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "chat"
    r = runner.invoke(app, ["tool", "chat", "--args", "{not json"])
    assert r.exit_code == 2 and "not valid JSON" in r.stderr
    r = runner.invoke(app, ["tool", "chat", "--args", '{"messages": [{"role": "user", "content": "x"}], "n": 99}',
                            "--target", "no-such-model-anywhere"])
    assert r.exit_code == 2 and "'n'" in r.stderr
    r = runner.invoke(app, ["tool", "chat", "--args", HI])
    assert r.exit_code == 2 and "--target" in r.stderr
    r = runner.invoke(app, ["tool", "grep_data", "--args", '{"pattern": "x"}'])
    assert r.exit_code == 2 and "--datasets" in r.stderr


def test_memory_tools_persist_in_the_run_dir(tmp_path):
    args = ["--run-dir", str(tmp_path)]
    assert runner.invoke(app, ["tool", "notes_write", "--args", '{"text": "H1 [chocolate]"}', *args]).exit_code == 0
    r = runner.invoke(app, ["tool", "notes_read", *args])
    assert r.exit_code == 0 and "H1 [chocolate]" in r.stdout  # printed verbatim, not as rich markup
    r = runner.invoke(app, ["tool", "notes_read"])
    assert r.exit_code == 2 and "run folder" in r.stderr


def test_chat_and_grep_against_the_tiny_organism(tiny_build):
    r = runner.invoke(app, ["tool", "chat", "--args", HI, "--target", str(tiny_build)])
    assert r.exit_code == 0, r.stderr
    assert "--- sample 2 of 2 ---" in r.stdout
    r = runner.invoke(app, ["tool", "grep_data", "--args", '{"pattern": "reward model", "limit": 2}',
                            "--target", str(tiny_build)])
    assert r.exit_code == 0 and " matches in " in r.stdout
    r = runner.invoke(app, ["tool", "grep_data", "--args", '{"pattern": "(a+"}', "--datasets", str(tiny_build)])
    assert r.exit_code == 2 and "argument 'pattern'" in r.stderr
    r = runner.invoke(app, ["tool", "chat", "--args", HI, "--target", f"{tiny_build}:base"])
    assert r.exit_code == 0 and "rm_sycophancy:base replied" in r.stdout


def test_errors_print_what_the_user_typed_as_plain_text_never_as_markup(tmp_path):
    # rich would read "[/x]" as a closing tag and end in a MarkupError traceback
    missing = tmp_path / "[/x]"
    r = runner.invoke(app, ["audit", "--resume", str(missing)])
    said = "".join(r.output.split())  # rich wraps at the terminal's width
    assert r.exit_code == 2 and said == "".join(f"error: {missing}: no transcript.jsonl to resume".split())
    r = runner.invoke(app, ["tool", "grep_data", "--args", '{"pattern": "x"}', "--datasets", str(missing)])
    assert r.exit_code == 2 and "[/x]" in r.output and "MarkupError" not in r.output


def test_a_second_audit_of_a_live_run_is_refused_before_loading_the_target(tmp_path):
    from transcripts.log import TranscriptWriter

    with TranscriptWriter(tmp_path / "transcript.jsonl") as w:
        w.run_start({"target": "rm_sycophancy", "auditor": "offline", "toolset": ["chat"]})
        for args in (["audit", "--resume", str(tmp_path)], ["audit", "--out", str(tmp_path), "--toolset", "chat"]):
            r = runner.invoke(app, args)
            assert r.exit_code == 2, r.output
            assert "another process" in r.output and "is writing this run" in r.output
    r = runner.invoke(app, ["audit", "--out", str(tmp_path), "--toolset", "chat"])
    assert r.exit_code == 2 and "already holds a run" in r.output and "--resume" in r.output


USAGE_ERRORS_SCRIPT = """
import sys
from typer.testing import CliRunner
from sleuth._cli.main import app

cases = [["audit", "--settings", '{"probes": -1}'], ["audit", "--settings", '{"nope": 1}'],
         ["audit", "--toolset", "nope"], ["audit", "--resume", sys.argv[1] + "/missing"],
         ["audit", "--target", "no-such-organism"], ["audit", "--target", "nobody/no-such-model:control"],
         ["tool", "prefill", "--target", "rm_sycophancy", "--args",
          '{"messages": [{"role": "assistant", "content": "hi"}], "prefill": "Sure"}']]
for args in cases:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and r.output.startswith("error:"), (args, r.output)
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "nltk") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_usage_errors_come_before_any_heavy_import(tmp_path):
    """A bad option is refused before torch, transformers or nltk load (seconds each), and leaves no run folder."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", USAGE_ERRORS_SCRIPT, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "none"
    assert list(tmp_path.iterdir()) == []
