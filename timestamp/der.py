"""A small DER writer and a strict DER reader for the per-token hot path.

asn1crypto builds an object tree for every value it encodes or parses; for
the few values that change in each token (TSTInfo, the message-digest
attribute, the wrappers) and for reading the common shape of a
``TimeStampReq``, writing and walking the bytes directly costs a fraction of
that.  Everything here works on complete DER encodings: one-octet tags,
definite minimal lengths.  The reader refuses anything else, and its callers
then fall back to asn1crypto, which decides what such input means.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["Reader", "generalized_time", "integer", "length", "tlv"]

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BOOLEAN = 0x01
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
GENERALIZED_TIME = 0x18


def length(n: int) -> bytes:
    """The DER length octets for ``n`` content octets."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    """One complete encoding: ``tag`` (one octet), the length of ``content``, ``content``."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + length(n) + content


def integer(value: int) -> bytes:
    """An INTEGER in the minimal two's complement form DER requires."""
    size = ((value if value >= 0 else -value - 1).bit_length() + 8) // 8
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def generalized_time(value: dt.datetime) -> bytes:
    """A GeneralizedTime in UTC with the fraction written only as far as it is non-zero (X.690 11.7).

    ``value`` must be timezone-aware; the caller converts it to UTC.
    """
    text = value.strftime("%Y%m%d%H%M%S")
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    return tlv(GENERALIZED_TIME, (text + "Z").encode("ascii"))


class Reader:
    """A strict DER walker over ``data[start:end]``.

    Every method raises ``ValueError`` for input that is not DER of the
    expected shape: another tag, a long-form or indefinite length, a length
    with leading zeros or one past the end.
    """

    __slots__ = ("data", "end", "position")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.position = start
        self.end = len(data) if end is None else end

    def at_end(self) -> bool:
        return self.position >= self.end

    def peek(self) -> int:
        """The next tag, or -1 at the end."""
        return self.data[self.position] if self.position < self.end else -1

    def read(self, tag: int) -> tuple[int, int]:
        """Read one element with ``tag``; return (content start, content end)."""
        data, position = self.data, self.position
        if position + 2 > self.end or data[position] != tag:
            raise ValueError("unexpected tag")
        first = data[position + 1]
        position += 2
        if first >= 0x80:
            count = first & 0x7F
            if count == 0 or count > 4 or position + count > self.end:
                raise ValueError("bad length")
            first = int.from_bytes(data[position : position + count], "big")
            if first < 0x80 or data[position] == 0:
                raise ValueError("non-minimal length")
            position += count
        end = position + first
        if end > self.end:
            raise ValueError("truncated")
        self.position = end
        return position, end

    def content(self, tag: int) -> bytes:
        """The content octets of the next element, which must have ``tag``."""
        start, end = self.read(tag)
        return self.data[start:end]

    def enter(self, tag: int) -> Reader:
        """A reader over the content of the next element (a constructed one with ``tag``)."""
        start, end = self.read(tag)
        return Reader(self.data, start, end)

    def integer(self) -> int:
        """The next INTEGER's value (any non-empty two's complement form)."""
        content = self.content(INTEGER)
        if not content:
            raise ValueError("empty INTEGER")
        return int.from_bytes(content, "big", signed=True)

    def finish(self) -> None:
        """Require that everything was read."""
        if self.position != self.end:
            raise ValueError("trailing data")
