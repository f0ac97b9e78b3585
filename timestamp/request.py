"""Building RFC 3161 timestamp requests (for the CLI, clients and tests)."""

from __future__ import annotations

import secrets

from asn1crypto import tsp

from timestamp.algorithms import hash_algorithm as lookup_hash_algorithm
from timestamp.errors import TimestampRequestInvalid, TSAConfigurationError
from timestamp.policy import check_oid


def random_nonce() -> int:
    """Return a random positive 64-bit nonce."""
    return secrets.randbits(63) | (1 << 63)


def build_request(
    data: bytes | None = None,
    *,
    digest: bytes | None = None,
    hash_algorithm: str = "sha256",
    nonce: bool | int = True,
    cert_req: bool = True,
    policy: str | None = None,
) -> bytes:
    """Return a DER ``TimeStampReq`` for ``data`` or for its precomputed ``digest``.

    Exactly one of ``data`` and ``digest`` is given.  ``hash_algorithm`` is a
    name (``sha256``, ``sha-384``, ``sha3_256``) or a dotted OID; the message
    imprint's AlgorithmIdentifier carries NULL parameters, as OpenSSL writes
    them.  ``nonce`` is ``True`` for a random 64-bit nonce, ``False`` for none,
    or the integer to send.  ``cert_req`` asks the TSA to include its
    certificates; ``policy`` is an optional policy OID.

    Raises :class:`TimestampRequestInvalid` for a missing or doubled input, a
    digest of the wrong length, a negative nonce or a malformed policy, and
    :class:`UnsupportedAlgorithm` for unknown or refused hashes (SHA-1, MD5).
    """
    if (data is None) == (digest is None):
        raise TimestampRequestInvalid(
            "give either the data or its digest", detail_zh="请提供数据或其摘要，二者只能选一"
        )
    algorithm = lookup_hash_algorithm(hash_algorithm)
    if digest is None:
        assert data is not None
        digest = algorithm.digest(data)
    elif len(digest) != algorithm.digest_size:
        raise TimestampRequestInvalid(
            f"a {algorithm.name} digest has {algorithm.digest_size} bytes, not {len(digest)}",
            detail_zh=f"{algorithm.name} 摘要应为 {algorithm.digest_size} 字节，而不是 {len(digest)} 字节",
        )
    if nonce is True:
        nonce_value: int | None = random_nonce()
    elif nonce is False:
        nonce_value = None
    else:
        nonce_value = int(nonce)
        if nonce_value < 0:
            raise TimestampRequestInvalid("the nonce must not be negative", detail_zh="随机数不能为负")
    if policy is not None:
        try:
            check_oid(policy, "policy")
        except TSAConfigurationError as e:
            raise TimestampRequestInvalid(e.detail, detail_zh=e.detail_zh) from e
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": algorithm.name},
                "hashed_message": digest,
            },
            "req_policy": policy,
            "nonce": nonce_value,
            "cert_req": cert_req,
        }
    )
    return request.dump()
