"""Every benchmark script runs end to end in its quick mode, against its real peer, and reports figures.

The figures of a quick run mean nothing (tiny counts, a loaded machine); what is checked is that each script
starts what it needs, measures both sides, stops everything and prints a well-formed record, so `make bench`
does not rot between the runs that publish docs/performance.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "bench").glob("bench_*.py"))


def _record(stdout: str) -> dict[str, object]:
    """The JSON record a script prints last (it starts at the last line that is exactly '{')."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))  # type: ignore[no-any-return]


def _processes_under(directory: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if directory in command:
                found.append(command)
    return found


def test_there_is_a_script_per_scenario_of_the_issue() -> None:
    names = {p.stem.removeprefix("bench_") for p in SCRIPTS}
    assert {"issuance", "ocsp", "tsa", "pades", "revoke", "backup", "login", "memory"} <= names


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_quick_run_measures_hengxin_and_its_peer(script: Path) -> None:
    # Each script's workspace is /tmp/hengxin-bench-<scenario>-*: look only for its own processes.
    marker = f"hengxin-bench-{script.stem.removeprefix('bench_')}-"
    before = set(_processes_under(marker))
    completed = subprocess.run([sys.executable, str(script), "--quick", "--no-save"], cwd=ROOT, capture_output=True,
                               text=True, timeout=220)
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-2000:]
    record = _record(completed.stdout)
    assert record["quick"] is True
    assert isinstance(record["method"], str) and len(record["method"]) > 40
    rows = record["rows"]
    assert isinstance(rows, list) and rows
    for row in rows:
        assert isinstance(row["hengxin"], int | float) and row["hengxin"] > 0, row
        peer_value = row["peer_value"]
        if row["peer"] and peer_value is not None:
            assert isinstance(peer_value, int | float) and peer_value > 0, row
    assert any(row["peer"] and row["peer_value"] for row in rows) or script.stem == "bench_memory"
    left = set(_processes_under(marker)) - before
    assert not left, f"the benchmark left processes running: {left}"
