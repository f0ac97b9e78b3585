"""The font for visible signature text: one single-face TrueType/OpenType file with Chinese glyphs.

pyHanko embeds OpenType fonts through fontTools and HarfBuzz
(``pyhanko[opentype]``), one file, one face.  Debian's Noto CJK
(``fonts-noto-cjk``) and WenQuanYi (``fonts-wqy-*``) fonts are TrueType
*collections* (``.ttc``): pyHanko cannot pick a face out of them, so they are
refused here with a clear error.  The default is AR PL SungtiL GB from
``fonts-arphic-gbsn00lp`` (GB 2312 coverage, Latin included).

The font file is read once and kept in memory; every signature builds its own
glyph accumulator (per-document state) from those bytes.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory
from pyhanko.pdf_utils.writer import BasePdfFileWriter

from signing.errors import FontUnavailable

# Where Debian's fonts-arphic-gbsn00lp puts its single face.
DEFAULT_FONT_PATHS: tuple[Path, ...] = (Path("/usr/share/fonts/truetype/arphic-gbsn00lp/gbsn00lp.ttf"),)
FONT_DIRECTORIES: tuple[Path, ...] = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
DEFAULT_FONT_NAME = "gbsn00lp.ttf"

_COLLECTION_MAGIC = b"ttcf"
_SINGLE_FACE_MAGICS = (b"\x00\x01\x00\x00", b"OTTO", b"true")


def find_font(path: str | Path | None = None) -> Path:
    """Return the font file to use: ``path`` if given, else the installed AR PL SungtiL GB.

    Raises :class:`FontUnavailable` when the file is missing.
    """
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise FontUnavailable(f"font file {candidate.name!r} does not exist", detail_zh="字体文件不存在")
        return candidate
    for candidate in DEFAULT_FONT_PATHS:
        if candidate.is_file():
            return candidate
    for directory in FONT_DIRECTORIES:
        if directory.is_dir():
            for candidate in sorted(directory.rglob(DEFAULT_FONT_NAME)):
                return candidate
    raise FontUnavailable(
        "no font with Chinese glyphs found: install the Debian package fonts-arphic-gbsn00lp",
        detail_zh="未找到中文字体：请安装 Debian 软件包 fonts-arphic-gbsn00lp",
    )


class SignatureFont(FontEngineFactory):
    """A pyHanko font engine factory over a font file held in memory.

    Raises :class:`FontUnavailable` for a TrueType collection (``.ttc``) or a
    file that is not a TrueType/OpenType font.
    """

    def __init__(self, path: Path, data: bytes) -> None:
        if data[:4] == _COLLECTION_MAGIC:
            raise FontUnavailable(
                f"{path.name} is a TrueType collection (.ttc), which pyHanko cannot embed; "
                "use a single-face .ttf/.otf such as fonts-arphic-gbsn00lp's gbsn00lp.ttf",
                detail_zh=f"{path.name} 是 TrueType 字体集（.ttc），无法嵌入；请使用单一字形的 .ttf/.otf 字体",
            )
        if data[:4] not in _SINGLE_FACE_MAGICS:
            raise FontUnavailable(
                f"{path.name} is not a TrueType or OpenType font", detail_zh=f"{path.name} 不是 TrueType/OpenType 字体"
            )
        self.path = path
        self._data = data

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> FontEngine:
        # Imported here so that a platform without the opentype extra can still sign invisibly.
        from pyhanko.pdf_utils.font.opentype import GlyphAccumulator

        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(
            writer=writer,
            font_handle=io.BytesIO(self._data),
            font_size=10,
            bcp47_lang_code="zh-CN",
            obj_stream=obj_stream,
        )


@functools.lru_cache(maxsize=8)
def _load(path: Path) -> SignatureFont:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FontUnavailable(f"font file {path.name!r} cannot be read", detail_zh="字体文件无法读取") from e
    return SignatureFont(path, data)


def load_font(path: str | Path | None = None) -> SignatureFont:
    """Return the (cached) font for ``path``, or the default font.

    Raises :class:`FontUnavailable` as :func:`find_font` and :class:`SignatureFont` do.
    """
    return _load(find_font(path).resolve())
