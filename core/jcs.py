"""RFC 8785 JSON Canonicalization Scheme, for the values Hengxin hashes.

Hashed records (the audit chain, checkpoints, manifests) must hash the same
bytes on every database and Python version, so they are encoded canonically:
object members sorted by their UTF-16 code units, no insignificant white
space, strings escaped as ECMAScript's ``JSON.stringify`` does.

Numbers are restricted to integers within the IEEE-754 exact range; floats are
refused rather than risk a formatting difference (store them as strings).
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

_MAX_SAFE_INTEGER = 2**53 - 1


def canonicalize(value: Any) -> bytes:
    """Return the canonical UTF-8 encoding of ``value``.

    Raises ``TypeError`` for unsupported values (floats, bytes, non-string keys)
    and ``ValueError`` for integers outside ±(2**53-1) or lone surrogates.
    """
    parts: list[str] = []
    _encode(value, parts)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("lone surrogate in string") from e


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise ValueError(f"integer {value} is outside the range JSON numbers represent exactly")
        out.append(str(value))
    elif isinstance(value, str):
        # Python's escaping matches ECMAScript's for ensure_ascii=False: the
        # short escapes for \b \f \n \r \t \" \\ and \u00xx (lower case) for
        # other control characters; everything else is emitted as is.  This is
        # the function json.dumps(value, ensure_ascii=False) calls, without its
        # encoder set-up per string (a third of the cost of an audit record).
        out.append(encode_basestring(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
        out.append("{")
        # For ASCII keys UTF-16 code-unit order is plain string order.
        keys = sorted(value) if all(key.isascii() for key in value) else sorted(value, key=_utf16_key)
        for index, key in enumerate(keys):
            if index:
                out.append(",")
            out.append(encode_basestring(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"{type(value).__name__} cannot be canonicalised (floats and bytes are not allowed)")
