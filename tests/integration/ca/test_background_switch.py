"""[ca] background_jobs = false (disaster-recovery sandboxes) starts no CRL publisher or maintenance."""

from pathlib import Path

from api.platform import initialise, open_platform
from tests.helpers import make_settings


def test_ca_background_jobs_can_be_switched_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")
    initialise(settings)
    counts = {}
    for enabled in (True, False):
        settings.ca.background_jobs = enabled
        platform = open_platform(settings)
        try:
            counts[enabled] = len(platform.services.get("background_tasks", []))
            assert "ca" in platform.services  # the CA still answers OCSP, serves CRLs, issues
        finally:
            platform.close()
    assert counts[True] - counts[False] == 2
