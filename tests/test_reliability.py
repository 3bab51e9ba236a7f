"""An audit killed with SIGKILL at any point resumes to the report an uninterrupted run gives (issue: reliability).
Ten kills of one run of the tiny organism: eight at random events, one inside a batch of tool calls, one at the
report. Minutes of audits, so marked slow; `python tests/fault_injection.py --target rm_sycophancy --out DIR` runs
the same on any organism."""

from __future__ import annotations

import pytest
from fault_injection import inject


@pytest.mark.slow
def test_an_audit_killed_at_ten_points_resumes_to_the_uninterrupted_report(tiny_build, tmp_path):
    got = inject(str(tiny_build), tmp_path, kills=10, seed=0)
    assert got["same_report"], got
    assert len(got["kills"]) >= 8, got  # a kill point past the run's end cannot kill it
    # Each kill before the run ended is followed by a resume that says so; one after it ended is finished quietly.
    assert got["resumes"] >= len(got["kills"]) - 1 and got["score_killed_run"] == got["score_reference"]
