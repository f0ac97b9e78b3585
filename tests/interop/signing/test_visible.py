"""A visible signature with Chinese text embeds its font subset and renders."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.nss import require_binary
from tests.interop.signing.conftest import run


def test_the_cjk_font_is_embedded_as_a_subset_with_a_unicode_map(documents: dict[str, Path]) -> None:
    result = run(require_binary("pdffonts", "poppler-utils"), str(documents["visible"]))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    cid_fonts = [row for row in rows if "CID" in row]
    assert cid_fonts, result.stdout
    name, *_, embedded, subset, unicode_map, _number, _generation = cid_fonts[0]
    assert "BousungEG-Light-GB" in name
    assert (embedded, subset, unicode_map) == ("yes", "yes", "yes")


def test_the_signed_page_renders(documents: dict[str, Path], tmp_path: Path) -> None:
    result = run(require_binary("pdftoppm", "poppler-utils"), "-png", "-r", "50", "-f", "1", "-l", "1",
                 str(documents["visible"]), str(tmp_path / "page"))
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr
    (png,) = tmp_path.glob("page*.png")
    assert png.read_bytes().startswith(b"\x89PNG")
