"""bench/run_all.py: the generated table replaces only its own part of docs/performance.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_run_all", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "DOC", tmp_path / "performance.md")
    return module


def _latest(rows: list[dict[str, object]], failures: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "taken_at": "2026-11-22T10:00:00Z", "quick": False, "wall_seconds": 12.0,
        "machine": {"cores": 2, "cpu": "Test CPU", "memory_mib": 1024, "kernel": "6.1", "python": "3.11.7",
                    "load_average_at_start": [0.1, 0.1, 0.1]},
        "scenarios": [{"scenario": "tsa", "method": "wrk against /tsa, 16 connections.", "rows": rows}],
        "failures": failures or {},
    }


def test_generated_table_replaces_only_the_marked_section(run_all) -> None:  # type: ignore[no-untyped-def]
    run_all.DOC.write_text(f"# Performance\n\nhand-written intro\n\n{run_all.BEGIN}\nold table\n{run_all.END}\n\n"
                           "## Analysis\nhand-written analysis\n")
    harness = sys.modules["harness"]
    row = harness.row("tokens/s, c16", 2400.0, "1/s", peer="openssl ts -reply", peer_value=150.0,
                      target=">= 2,000/s and 15x", met=True, generator_cpu_percent=12.5)
    run_all.publish_doc(run_all.render(_latest([row], {"backup": "exit 1: restic missing"})))
    text = run_all.DOC.read_text()
    assert "old table" not in text
    assert "hand-written intro" in text and "hand-written analysis" in text
    line = "| tsa | tokens/s, c16 | 2,400 | 1/s | openssl ts -reply | 150 | 16.00 | >= 2,000/s and 15x | yes | 12.50 |"
    assert line in text
    assert "- backup: exit 1: restic missing" in text
    assert text.count(run_all.BEGIN) == 1 and text.count(run_all.END) == 1


def test_a_missed_target_is_marked_in_bold(run_all) -> None:  # type: ignore[no-untyped-def]
    harness = sys.modules["harness"]
    row = harness.row("logins/s", 20.0, "1/s", peer="argon2-cffi", peer_value=40.0, target=">= 90 %", met=False)
    assert "| **no** |" in run_all.render(_latest([row]))
    assert row["ratio"] == 0.5


def test_document_without_markers_is_refused(run_all) -> None:  # type: ignore[no-untyped-def]
    run_all.DOC.write_text("# Performance\n")
    with pytest.raises(SystemExit, match="markers"):
        run_all.publish_doc("table")
