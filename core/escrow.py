"""Split a restore secret among custodians (m of n), and put it back together.

The master passphrase, repository passwords and HSM PINs are deliberately not
in backups.  They are escrowed with split knowledge: Shamir's secret sharing
over GF(2^8), each byte of the secret the constant term of its own random
polynomial of degree m-1; share i holds the polynomials' values at x = i.
Fewer than m shares reveal nothing about the secret.

A share is one line of text a custodian can print or store::

    hxs1.<threshold>.<index>.<set id>.<base32 data>.<checksum>

``set id`` is random per split, so shares of different splits are not mixed
up; ``checksum`` catches typing errors in a single share.  What is shared is
the secret followed by an 8-byte SHA-256 tag of it, so ``combine`` knows when
the recovered secret is right, while no single share (nor any set smaller
than the threshold) carries anything derived from the secret — a short PIN
cannot be brute-forced from one share.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets as pysecrets
from collections.abc import Sequence

from core.errors import InvalidInput

PREFIX = "hxs1"


class EscrowError(InvalidInput):
    code = "escrow.invalid"
    title_en = "Escrow shares are invalid"
    title_zh = "托管分片无效"


# -- GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 ---------------------------------------

_EXP = [0] * 512
_LOG = [0] * 256


def _init_tables() -> None:
    value = 1
    for power in range(255):
        _EXP[power] = value
        _LOG[value] = power
        # multiply by the generator 3: value * 2 xor value, reduced
        doubled = value << 1
        if doubled & 0x100:
            doubled ^= 0x11B
        value = doubled ^ value
    for power in range(255, 512):
        _EXP[power] = _EXP[power - 255]


_init_tables()


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[_LOG[a] - _LOG[b] + 255]


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    result = 0
    for coefficient in reversed(coefficients):
        result = _mul(result, x) ^ coefficient
    return result


# -- shares -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Share:
    threshold: int
    index: int
    set_id: str
    data: bytes

    def encode(self) -> str:
        body = f"{PREFIX}.{self.threshold}.{self.index}.{self.set_id}." + base64.b32encode(self.data).decode(
        ).rstrip("=")
        return f"{body}.{_checksum(body)}"

    @classmethod
    def decode(cls, text: str) -> Share:
        text = "".join(text.split())
        parts = text.split(".")
        if len(parts) != 6 or parts[0] != PREFIX:
            raise EscrowError("not a Hengxin escrow share", detail_zh="不是恒信托管分片")
        body, checksum = ".".join(parts[:5]), parts[5]
        if not hmac.compare_digest(_checksum(body), checksum):
            raise EscrowError("the share's checksum does not match: it was mistyped or damaged",
                              detail_zh="分片校验和不匹配")
        try:
            threshold, index = int(parts[1]), int(parts[2])
            padded = parts[4] + "=" * (-len(parts[4]) % 8)
            data = base64.b32decode(padded)
        except ValueError as e:
            raise EscrowError("the share is malformed") from e
        if not (2 <= threshold <= 255 and 1 <= index <= 255):
            raise EscrowError("the share's threshold or index is out of range")
        return cls(threshold, index, parts[3], data)


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:8]


_TAG_LENGTH = 8


def _tag(secret: bytes) -> bytes:
    return hashlib.sha256(b"hengxin escrow tag\x00" + secret).digest()[:_TAG_LENGTH]


def split(secret: bytes, threshold: int, shares: int) -> list[Share]:
    """Split ``secret`` into ``shares`` shares, any ``threshold`` of which recover it.

    Raises EscrowError unless 2 <= threshold <= shares <= 255 and the secret is non-empty.
    """
    if not secret:
        raise EscrowError("nothing to split: the secret is empty")
    if not 2 <= threshold <= shares <= 255:
        raise EscrowError(f"need 2 <= threshold <= shares <= 255 (got {threshold} of {shares})")
    payload = secret + _tag(secret)
    polynomials = [[byte, *pysecrets.token_bytes(threshold - 1)] for byte in payload]
    set_id = pysecrets.token_hex(4)
    return [
        Share(threshold, x, set_id, bytes(_evaluate(poly, x) for poly in polynomials))
        for x in range(1, shares + 1)
    ]


def combine(shares: Sequence[Share]) -> bytes:
    """Recover the secret from at least ``threshold`` shares.

    Raises EscrowError for too few shares, duplicates, shares of different
    secrets, or a result that does not match the shares' fingerprint.
    """
    if not shares:
        raise EscrowError("no shares given")
    threshold, set_id, length = shares[0].threshold, shares[0].set_id, len(shares[0].data)
    if any(s.threshold != threshold or s.set_id != set_id or len(s.data) != length for s in shares):
        raise EscrowError("the shares belong to different secrets", detail_zh="分片属于不同的机密")
    indices = [s.index for s in shares]
    if len(set(indices)) != len(indices):
        raise EscrowError("the same share was given twice", detail_zh="同一分片被重复提供")
    if len(shares) < threshold:
        raise EscrowError(f"{threshold} shares are needed, {len(shares)} were given",
                          detail_zh=f"需要 {threshold} 个分片，只提供了 {len(shares)} 个")
    if length <= _TAG_LENGTH:
        raise EscrowError("the shares are too short to hold a secret")
    chosen = shares[:threshold]
    payload = bytearray(length)
    for i, share in enumerate(chosen):
        # Lagrange basis polynomial for share i, evaluated at x = 0.
        basis = 1
        for j, other in enumerate(chosen):
            if i != j:
                basis = _mul(basis, _div(other.index, other.index ^ share.index))
        for position in range(length):
            payload[position] ^= _mul(share.data[position], basis)
    secret, tag = bytes(payload[:-_TAG_LENGTH]), bytes(payload[-_TAG_LENGTH:])
    if not hmac.compare_digest(_tag(secret), tag):
        raise EscrowError("the shares do not reproduce the escrowed secret: one of them is wrong",
                          detail_zh="分片无法还原机密：其中有错误的分片")
    return secret
