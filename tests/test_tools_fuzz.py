"""The fuzz harness (tools/fuzz_cli.py) runs and finds nothing on a small batch of cases: every
mutated spec, override, dataset file, store and checkpoint ends in exit 0 or exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"


@pytest.mark.slow
def test_a_small_fuzz_batch_gives_no_traceback_hang_or_memory_kill():
    done = subprocess.run(
        [sys.executable, str(TOOLS / "fuzz_cli.py"), "--cases", "40", "--workers", "2", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["cases"] == 40 and counts["commands"] >= 40
    assert counts["tracebacks"] == counts["other_exits"] == counts["hangs"] == counts["memory_kills"] == 0, counts
    assert counts["exit_2"] > 0  # the mutations do reach the checks
