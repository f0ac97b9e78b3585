"""Human drill reports: HTML (with an SVG chart) and PDF (our own minimal writer, CJK font embedded).

The PDF is one or more A4 pages of text plus a line chart of RTO and RPO over
past drills, drawn with PDF path operators.  Text uses a subset of a single-face
TrueType font with Chinese glyphs (``fonts-arphic-gbsn00lp``), embedded as a
``CIDFontType2`` with ``Identity-H`` encoding and a ToUnicode map, so the
report renders the same everywhere and its text can be searched.  The PDF is
plain (classic cross-reference table) so pyHanko can sign it incrementally.
"""

from __future__ import annotations

import html
import io
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FONT_PATHS = (Path("/usr/share/fonts/truetype/arphic-gbsn00lp/gbsn00lp.ttf"),)
PAGE_WIDTH, PAGE_HEIGHT = 595, 842
MARGIN = 50

LABELS = {
    "en": {
        "title": "Disaster-recovery drill report",
        "drill": "Drill",
        "instance": "Instance",
        "result": "Result",
        "started": "Started",
        "finished": "Finished",
        "snapshot": "Snapshot",
        "repository": "Repository",
        "rto": "RTO",
        "rpo": "RPO",
        "target": "target",
        "failing_step": "Failing step",
        "reason": "Reason",
        "steps": "Steps",
        "chart": "RTO and RPO of past drills (seconds)",
        "passed": "passed",
        "failed": "failed",
        "could_not_run": "could not run",
        "pending": "Probes not yet available",
        "met": "met",
        "missed": "missed",
    },
    "zh-CN": {
        "title": "灾备演练报告",
        "drill": "演练编号",
        "instance": "实例",
        "result": "结果",
        "started": "开始时间",
        "finished": "结束时间",
        "snapshot": "快照",
        "repository": "备份仓库",
        "rto": "恢复时间 RTO",
        "rpo": "恢复点 RPO",
        "target": "目标",
        "failing_step": "失败步骤",
        "reason": "原因",
        "steps": "步骤",
        "chart": "历次演练的 RTO 与 RPO（秒）",
        "passed": "通过",
        "failed": "失败",
        "could_not_run": "无法运行",
        "pending": "尚未提供的探测",
        "met": "达标",
        "missed": "未达标",
    },
}


def _labels(language: str) -> dict[str, str]:
    return LABELS["zh-CN" if language.startswith("zh") else "en"]


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} s"


def report_lines(report: Mapping[str, Any], language: str) -> list[tuple[str, int]]:
    """The report as (text, size) lines, the same for HTML and PDF."""
    t = _labels(language)
    snapshot = report.get("snapshot") or {}
    reason = report.get("reason_zh") if language.startswith("zh") and report.get("reason_zh") else report.get("reason")
    lines: list[tuple[str, int]] = [(t["title"], 18), ("", 8)]
    rows = [
        (t["drill"], report.get("id")),
        (t["instance"], report.get("instance")),
        (t["result"], t.get(str(report.get("result")), report.get("result"))),
        (t["started"], report.get("started_at")),
        (t["finished"], report.get("finished_at")),
        (t["repository"], report.get("repository")),
        (t["snapshot"], f"{snapshot.get('short_id', '-')} ({snapshot.get('time', '-')})"),
        (
            t["rto"],
            f"{_seconds(report.get('rto_seconds'))}  ({t['target']} {_seconds(report.get('rto_target_seconds'))}, "
            f"{t['met'] if report.get('rto_met') else t['missed']})",
        ),
        (
            t["rpo"],
            f"{_seconds(report.get('rpo_seconds'))}  ({t['target']} {_seconds(report.get('rpo_target_seconds'))}, "
            f"{t['met'] if report.get('rpo_met') else t['missed']})",
        ),
    ]
    if report.get("failing_step"):
        rows += [(t["failing_step"], report["failing_step"]), (t["reason"], reason)]
    lines += [(f"{name}: {value}", 10) for name, value in rows]
    lines += [("", 8), (t["steps"], 13)]
    for step in report.get("steps", []):
        lines.append((f"  {step['name']:<24} {step['status']:<8} {step['seconds']:8.2f} s", 9))
    if report.get("pending_probes"):
        lines += [("", 6), (t["pending"] + ": " + "; ".join(report["pending_probes"]), 8)]
    return lines


# ---------------------------------------------------------------------------------------------- HTML


def render_html(report: Mapping[str, Any], history: Sequence[Mapping[str, Any]], language: str) -> str:
    """A self-contained HTML page: the report and an inline SVG chart of RTO and RPO over ``history``."""
    t = _labels(language)
    body = []
    for text, size in report_lines(report, language):
        if size >= 18:
            body.append(f"<h1>{html.escape(text)}</h1>")
        elif size >= 13:
            body.append(f"<h2>{html.escape(text)}</h2>")
        elif text:
            body.append(f"<div style='font-size:{size + 3}px;white-space:pre'>{html.escape(text)}</div>")
    body.append(f"<h2>{html.escape(t['chart'])}</h2>")
    body.append(_svg_chart(history))
    lang = "zh-CN" if language.startswith("zh") else "en"
    return (
        f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'><title>{html.escape(t['title'])} "
        f"{html.escape(str(report.get('id')))}</title></head><body style='font-family:sans-serif'>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _series(history: Sequence[Mapping[str, Any]]) -> tuple[list[float | None], list[float | None], float]:
    rto = [h.get("rto_seconds") for h in history]
    rpo = [h.get("rpo_seconds") for h in history]
    top = max([v for v in rto + rpo if v is not None] or [1.0]) * 1.1 or 1.0
    return rto, rpo, top


def _svg_chart(history: Sequence[Mapping[str, Any]], width: int = 480, height: int = 200) -> str:
    rto, rpo, top = _series(history)
    count = max(len(history), 2)

    def points(values: list[float | None]) -> str:
        return " ".join(
            f"{20 + i * (width - 40) / (count - 1):.1f},{height - 20 - (v / top) * (height - 40):.1f}"
            for i, v in enumerate(values)
            if v is not None
        )

    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"
        f"<rect x='0' y='0' width='{width}' height='{height}' fill='white' stroke='#888'/>"
        f"<text x='4' y='14' font-size='10'>max {top:.0f} s</text>"
        f"<polyline fill='none' stroke='#c0392b' stroke-width='2' points='{points(rto)}'/>"
        f"<polyline fill='none' stroke='#2c6fbb' stroke-width='2' points='{points(rpo)}'/>"
        f"<text x='{width - 90}' y='14' font-size='10' fill='#c0392b'>RTO</text>"
        f"<text x='{width - 50}' y='14' font-size='10' fill='#2c6fbb'>RPO</text></svg>"
    )


# ---------------------------------------------------------------------------------------------- PDF


def find_font() -> Path:
    for path in FONT_PATHS:
        if path.is_file():
            return path
    for candidate in sorted(Path("/usr/share/fonts").rglob("gbsn00lp.ttf")):
        return candidate
    raise FileNotFoundError("no font with Chinese glyphs: install the Debian package fonts-arphic-gbsn00lp")


class _Font:
    """A TrueType subset for the characters used, keeping glyph ids (so CIDs equal glyph ids)."""

    def __init__(self, path: Path, text: str) -> None:
        from fontTools import subset
        from fontTools.ttLib import TTFont

        font = TTFont(str(path))
        cmap = font.getBestCmap()
        self.units = font["head"].unitsPerEm
        chars = sorted({c for c in text if ord(c) in cmap} | {" "})
        self.gids = {c: font.getGlyphID(cmap[ord(c)]) for c in chars if ord(c) in cmap}
        metrics = font["hmtx"].metrics
        self.widths = {gid: metrics[font.getGlyphName(gid)][0] * 1000 // self.units for gid in self.gids.values()}
        self.ascent = font["hhea"].ascent * 1000 // self.units
        self.descent = font["hhea"].descent * 1000 // self.units
        options = subset.Options()
        options.retain_gids = True
        options.notdef_outline = True
        options.name_IDs = ["*"]
        options.drop_tables += ["GSUB", "GPOS", "GDEF", "vhea", "vmtx"]
        subsetter = subset.Subsetter(options=options)
        subsetter.populate(unicodes=[ord(c) for c in chars])
        subsetter.subset(font)
        buffer = io.BytesIO()
        font.save(buffer)
        self.data = buffer.getvalue()
        self.name = "HXDRAA+" + str(font["name"].getDebugName(6) or "CJKFont").replace(" ", "")

    def encode(self, text: str) -> str:
        return "<" + "".join(f"{self.gids.get(c, 0):04X}" for c in text) + ">"

    def width(self, text: str, size: float) -> float:
        return sum(self.widths.get(self.gids.get(c, 0), 500) for c in text) * size / 1000


def _to_unicode(gids: Mapping[str, int]) -> bytes:
    pairs = sorted(gids.items(), key=lambda item: item[1])
    entries = "\n".join(f"<{gid:04X}> <{ord(c):04X}>" for c, gid in pairs if ord(c) < 0x10000)
    count = len(gids)
    return (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
        "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
        f"{count} beginbfchar\n{entries}\nendbfchar\nendcmap CMapName currentdict /CMap defineresource pop end end\n"
    ).encode("ascii")


def _wrap(font: _Font, text: str, size: int, width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for char in text:
        if font.width(current + char, size) > width and current:
            lines.append(current)
            current = "  " + char
        else:
            current += char
    lines.append(current)
    return lines


def _chart_ops(history: Sequence[Mapping[str, Any]], x: float, y: float, width: float, height: float) -> list[str]:
    rto, rpo, top = _series(history)
    count = max(len(history), 2)
    ops = ["q 0.5 w 0.5 0.5 0.5 RG", f"{x} {y} {width} {height} re S"]
    for fraction in (0.25, 0.5, 0.75):
        ops.append(f"0.85 0.85 0.85 RG {x} {y + height * fraction:.1f} m {x + width} {y + height * fraction:.1f} l S")
    for values, colour in ((rto, "0.75 0.22 0.17"), (rpo, "0.17 0.44 0.73")):
        path: list[str] = []
        for index, value in enumerate(values):
            if value is None:
                continue
            px = x + 10 + index * (width - 20) / (count - 1)
            py = y + (value / top) * (height - 10)
            path.append(f"{px:.1f} {py:.1f} {'m' if not path else 'l'}")
            ops.append(f"{colour} rg {px - 2:.1f} {py - 2:.1f} 4 4 re f")
        if path:
            ops.append(f"1.5 w {colour} RG " + " ".join(path) + " S")
    ops.append("Q")
    return ops


def render_pdf(report: Mapping[str, Any], history: Sequence[Mapping[str, Any]], language: str) -> bytes:
    """The report as a PDF with the font subset embedded and an RTO/RPO chart of ``history``."""
    t = _labels(language)
    raw_lines = report_lines(report, language)
    rto, rpo, top = _series(history)
    chart_title = t["chart"]
    legend = f"RTO ─  RPO ─   max {top:.0f} s"
    all_text = "".join(text for text, _ in raw_lines) + chart_title + legend + "0123456789. -:()"
    font = _Font(find_font(), all_text)
    usable = PAGE_WIDTH - 2 * MARGIN
    laid: list[tuple[str, int]] = []
    for text, size in raw_lines:
        laid += [(part, size) for part in _wrap(font, text, size, usable)]
    pages: list[list[str]] = [[]]
    y: float = PAGE_HEIGHT - MARGIN
    for text, size in laid:
        if y - size * 1.5 < MARGIN:
            pages.append([])
            y = PAGE_HEIGHT - MARGIN
        y -= size * 1.5
        if text:
            pages[-1].append(f"BT /F1 {size} Tf {MARGIN} {y:.1f} Td {font.encode(text)} Tj ET")
    chart_height = 170
    if y - chart_height - 40 < MARGIN:
        pages.append([])
        y = PAGE_HEIGHT - MARGIN
    y -= 24
    pages[-1].append(f"BT /F1 12 Tf {MARGIN} {y:.1f} Td {font.encode(chart_title)} Tj ET")
    y -= chart_height + 10
    pages[-1] += _chart_ops(history, MARGIN, y, usable, chart_height)
    pages[-1].append(
        f"BT /F1 8 Tf 0.75 0.22 0.17 rg {MARGIN} {y - 12:.1f} Td {font.encode('RTO ─')} Tj ET "
        f"BT /F1 8 Tf 0.17 0.44 0.73 rg {MARGIN + 40} {y - 12:.1f} Td {font.encode('RPO ─')} Tj ET "
        f"BT /F1 8 Tf 0 0 0 rg {MARGIN + 80} {y - 12:.1f} Td {font.encode(f'max {top:.0f} s')} Tj ET"
    )
    return _assemble(font, pages, str(report.get("id")), t["title"])


def _assemble(font: _Font, pages: list[list[str]], drill_id: str, title: str) -> bytes:
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(data: bytes, extra: str = "") -> bytes:
        packed = zlib.compress(data)
        return f"<< /Length {len(packed)} /Filter /FlateDecode {extra}>>\nstream\n".encode() + packed + b"\nendstream"

    font_file = add(stream(font.data, f"/Length1 {len(font.data)} "))
    bbox = f"[0 {font.descent} 1000 {font.ascent}]"
    descriptor = add(
        f"<< /Type /FontDescriptor /FontName /{font.name} /Flags 4 /FontBBox {bbox} /ItalicAngle 0 "
        f"/Ascent {font.ascent} /Descent {font.descent} /CapHeight {font.ascent} /StemV 80 "
        f"/FontFile2 {font_file} 0 R >>".encode()
    )
    widths = " ".join(f"{gid} [{width}]" for gid, width in sorted(font.widths.items()))
    cid_font = add(
        f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{font.name} "
        f"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        f"/FontDescriptor {descriptor} 0 R /CIDToGIDMap /Identity /DW 1000 /W [{widths}] >>".encode()
    )
    to_unicode = add(stream(_to_unicode(font.gids)))
    type0 = add(
        f"<< /Type /Font /Subtype /Type0 /BaseFont /{font.name} /Encoding /Identity-H "
        f"/DescendantFonts [{cid_font} 0 R] /ToUnicode {to_unicode} 0 R >>".encode()
    )
    pages_id = len(objects) + 2 * len(pages) + 1
    page_ids = []
    for content in pages:
        content_id = add(stream("\n".join(content).encode("ascii")))
        page_ids.append(
            add(
                f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
                f"/Resources << /Font << /F1 {type0} 0 R >> >> /Contents {content_id} 0 R >>".encode()
            )
        )
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    assert add(f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()) == pages_id
    title_hex = "FEFF" + title.encode("utf-16-be").hex().upper() + "0020" + drill_id.encode("utf-16-be").hex().upper()
    info = add(f"<< /Title <{title_hex}> /Producer (Hengxin) >>".encode())
    catalog = add(f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode())
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()
