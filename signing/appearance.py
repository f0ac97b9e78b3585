"""Visible signatures: where the signature field goes and what it shows.

A visible signature is a rectangle on one page showing an optional seal
image (PNG, transparency kept) and optional text.  The text is a template in
which ``{signer}``, ``{time}``, ``{reason}`` and ``{location}`` are replaced;
it may contain Chinese characters, drawn with an embedded subset of the
single-face CJK font from :mod:`signing.fonts`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import re

from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.stamp import BaseStampStyle, StaticStampStyle, TextStampStyle

from signing.errors import AppearanceInvalid
from signing.fonts import load_font

CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")
DEFAULT_TEXT = "{signer}\n{time}"
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_TEXT_LENGTH = 500
_PLACEHOLDERS = ("signer", "time", "reason", "location")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(_PLACEHOLDERS) + r")\}")


@dataclasses.dataclass(frozen=True)
class VisibleSignature:
    """Where and how to draw a signature.

    ``page`` counts from 1.  ``rect`` is ``(x1, y1, x2, y2)`` in PDF points
    (1/72 inch) from the page's lower-left corner.  ``text`` is a template
    (see the module docstring); ``None`` means :data:`DEFAULT_TEXT` unless an
    image is given, in which case the image alone is drawn; ``""`` draws no
    text.  ``image_png`` is a PNG (a seal, usually red on transparent).
    ``timezone`` is the zone ``{time}`` is shown in (default UTC+8).
    ``font_path`` overrides the default CJK font (a single-face .ttf/.otf).
    """

    page: int
    rect: tuple[float, float, float, float]
    text: str | None = None
    image_png: bytes | None = None
    font_size: int = 10
    timezone: dt.tzinfo = CHINA_STANDARD_TIME
    font_path: str | None = None

    def box(self) -> tuple[int, int, int, int]:
        """The rectangle as pyHanko wants it: integer points, lower-left first.

        Raises :class:`AppearanceInvalid` for a rectangle without area or with
        coordinates that are not finite numbers.
        """
        if len(self.rect) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in self.rect):
            raise AppearanceInvalid(
                "rect must be four finite numbers x1, y1, x2, y2", detail_zh="矩形必须是四个有限数值"
            )
        x1, y1, x2, y2 = (round(v) for v in self.rect)
        left, right = sorted((x1, x2))
        bottom, top = sorted((y1, y2))
        if right - left < 1 or top - bottom < 1:
            raise AppearanceInvalid("the signature rectangle has no area", detail_zh="签名矩形面积为零")
        if min(left, bottom) < -14400 or max(right, top) > 14400:
            raise AppearanceInvalid("the signature rectangle is outside any page", detail_zh="签名矩形超出页面范围")
        return left, bottom, right, top


def _template(text: str) -> str:
    """Turn our ``{name}`` template into pyHanko's %-template, escaping every other ``%``."""
    escaped = text.replace("%", "%%")
    return _PLACEHOLDER.sub(r"%(\1)s", escaped)


def _load_png(data: bytes) -> object:
    """Decode a PNG with Pillow, refusing other formats, oversized and unreadable images."""
    if len(data) > MAX_IMAGE_BYTES:
        raise AppearanceInvalid("the seal image is larger than 2 MiB", detail_zh="印章图片超过 2 MiB")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise AppearanceInvalid("the seal image must be a PNG", detail_zh="印章图片必须是 PNG 格式")
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is a dependency
        raise AppearanceInvalid("image support (Pillow) is not installed", detail_zh="未安装图片支持（Pillow）") from e
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=["PNG"])
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise AppearanceInvalid("the seal image has too many pixels", detail_zh="印章图片像素过多")
        image.load()
    except AppearanceInvalid:
        raise
    except Exception as e:
        raise AppearanceInvalid("the seal image is not a readable PNG", detail_zh="印章图片不是可读取的 PNG") from e
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA"):
        image = image.convert("RGBA")
    if image.mode == "P" and image.palette is not None and image.palette.mode != "RGB":
        image = image.convert("RGBA")
    return image


def stamp_style(visible: VisibleSignature) -> tuple[BaseStampStyle, bool]:
    """The pyHanko stamp style drawing ``visible``, and whether it shows text.

    Raises :class:`AppearanceInvalid` for an unreadable image or overlong text,
    :class:`~signing.errors.FontUnavailable` when text is wanted and no usable
    font is installed.
    """
    from pyhanko.pdf_utils.images import PdfImage
    from pyhanko.pdf_utils.layout import AxisAlignment, Margins, SimpleBoxLayoutRule

    background = None
    if visible.image_png is not None:
        background = PdfImage(_load_png(visible.image_png))  # type: ignore[arg-type]
    text = visible.text
    if text is None:
        text = "" if background is not None else DEFAULT_TEXT
    if len(text) > MAX_TEXT_LENGTH:
        raise AppearanceInvalid("the signature text is too long", detail_zh="签名文字过长")
    if not 4 <= visible.font_size <= 72:
        raise AppearanceInvalid("font_size must be between 4 and 72", detail_zh="字号必须在 4 到 72 之间")
    layout = SimpleBoxLayoutRule(
        x_align=AxisAlignment.ALIGN_MID, y_align=AxisAlignment.ALIGN_MID, margins=Margins.uniform(2)
    )
    if not text:
        return StaticStampStyle(border_width=0, background=background, background_opacity=1.0,
                                background_layout=layout), False
    font = load_font(visible.font_path)
    style = TextStampStyle(
        stamp_text=_template(text),
        text_box_style=TextBoxStyle(font=font, font_size=visible.font_size),
        border_width=0,
        background=background,
        background_opacity=1.0,
        background_layout=layout,
    )
    return style, True


def text_parameters(
    visible: VisibleSignature, *, signer: str, reason: str | None, location: str | None, now: dt.datetime
) -> dict[str, str]:
    """The values of the template placeholders."""
    return {
        "signer": signer,
        "time": now.astimezone(visible.timezone).strftime("%Y-%m-%d %H:%M:%S %z"),
        "reason": reason or "",
        "location": location or "",
    }
