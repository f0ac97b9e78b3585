"""qpdf --check finds no errors in anything we write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.nss import require_binary
from tests.interop.signing.conftest import run

OUTPUTS = ["B-B", "B-T", "B-LT", "B-LTA", "two-signatures", "visible", "document-timestamp"]


@pytest.mark.parametrize("name", OUTPUTS)
def test_qpdf_check_finds_no_errors(documents: dict[str, Path], name: str) -> None:
    result = run(require_binary("qpdf", "qpdf"), "--check", str(documents[name]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No syntax or stream encoding errors found" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr
