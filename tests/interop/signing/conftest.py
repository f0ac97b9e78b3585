"""Fixtures for the signing interop tests: signed documents, PEM files and an NSS database trusting our root."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from signing import VisibleSignature, add_document_timestamp, sign_cms_detached, sign_pdf
from signing.interfaces import ProviderTimeStamper
from tests.fixtures.nss import nss_db_factory, require_binary  # noqa: F401
from tests.fixtures.signing import (  # noqa: F401
    PKIRevocation,
    SigningPKI,
    revocation,
    sample_pdf,
    signing_pki,
    timestamper,
)

CONTENT = "关于印发《电子公文管理办法》的通知\n".encode() * 50


@pytest.fixture(scope="session")
def pki_files(signing_pki: SigningPKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    return signing_pki.write(tmp_path_factory.mktemp("signing-pki"))


@pytest.fixture(scope="session")
def nss_db(
    signing_pki: SigningPKI, nss_db_factory: Callable[[bytes], str]  # noqa: F811
) -> str:
    return nss_db_factory(signing_pki.pki.root.pem)


def _seal_png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 6, 154, 154), outline=(210, 20, 20, 255), width=8)
    draw.regular_polygon((80, 80, 30), 5, fill=(210, 20, 20, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
def documents(
    signing_pki: SigningPKI,  # noqa: F811
    sample_pdf: bytes,  # noqa: F811
    timestamper: ProviderTimeStamper,  # noqa: F811
    revocation: PKIRevocation,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """Every kind of signed output, written to files."""
    directory = tmp_path_factory.mktemp("signed")
    made: dict[str, bytes] = {}
    for level in ("B-B", "B-T", "B-LT", "B-LTA"):
        made[level] = sign_pdf(sample_pdf, signing_pki.person, level=level, timestamper=timestamper,
                               revocation=revocation, reason="同意")
    made["two-signatures"] = sign_pdf(made["B-T"], signing_pki.seal, level="B-LTA", timestamper=timestamper,
                                      revocation=revocation, reason="盖章")
    made["visible"] = sign_pdf(
        sample_pdf, signing_pki.seal, level="B-T", timestamper=timestamper, reason="审核通过",
        visible=VisibleSignature(page=1, rect=(330, 620, 560, 740), text="签章：{signer}\n时间：{time}\n理由：{reason}",
                                 image_png=_seal_png(), font_size=10),
    )
    made["document-timestamp"] = add_document_timestamp(made["B-T"], timestamper, revocation=revocation,
                                                        trust_roots=[signing_pki.root])
    paths = {}
    for name, data in made.items():
        paths[name] = directory / f"{name}.pdf"
        paths[name].write_bytes(data)
    paths["content"] = directory / "content.txt"
    paths["content"].write_bytes(CONTENT)
    for level in ("B-B", "B-T"):
        paths[f"cms-{level}"] = directory / f"{level}.p7s"
        paths[f"cms-{level}"].write_bytes(
            sign_cms_detached(CONTENT, signing_pki.person, level=level, timestamper=timestamper)
        )
    return paths


def tampered(path: Path, marker: bytes = b"Hengxin test document") -> Path:
    """A copy of ``path`` with one byte changed inside the first signed range."""
    data = bytearray(path.read_bytes())
    data[data.index(marker)] ^= 0x01
    out = path.with_name(path.stem + "-tampered" + path.suffix)
    out.write_bytes(bytes(data))
    return out


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)
