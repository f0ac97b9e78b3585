"""Fixtures for the timestamp interop tests: openssl in a scratch directory and the test PKI files."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.timestamp.tsa_pki import TSAPKI, PKIFiles, build_tsa_pki


@dataclass(frozen=True)
class OpenSSL:
    """Runs ``openssl`` in ``directory``."""

    binary: str
    directory: Path

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *map(str, args)], cwd=self.directory, capture_output=True, text=True, timeout=30
        )
        if check and result.returncode != 0:
            raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{result.stdout}{result.stderr}")
        return result


@pytest.fixture(scope="session")
def openssl_binary() -> str:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl is not installed: apt-get install openssl (make deps installs it)")
    return binary


@pytest.fixture
def openssl(openssl_binary: str, tmp_path: Path) -> OpenSSL:
    return OpenSSL(openssl_binary, tmp_path)


@pytest.fixture(scope="session")
def tsa_pki() -> TSAPKI:
    return build_tsa_pki("ec-p256")


@pytest.fixture
def pki_files(tsa_pki: TSAPKI, tmp_path: Path) -> PKIFiles:
    return tsa_pki.write(tmp_path / "tsa_pki")
