"""The in-process timestamp adapter and the revocation data container."""

from __future__ import annotations

import asyncio
import hashlib

from signing.interfaces import ProviderTimeStamper, RevocationInfo, TimestampProvider
from tests.fixtures.signing import SigningPKI


class _TSA:
    """A TimestampProvider object (not a bare callable) counting its requests."""

    def __init__(self, pki: SigningPKI) -> None:
        self.pki = pki
        self.requests = 0

    def stamp(self, request_der: bytes) -> bytes:
        self.requests += 1
        return self.pki.tsa.respond(request_der).der


def test_a_provider_object_is_asked_in_process_and_its_token_carries_the_digest(signing_pki: SigningPKI) -> None:
    provider = _TSA(signing_pki)
    assert isinstance(provider, TimestampProvider)
    stamper = ProviderTimeStamper(provider)
    digest = hashlib.sha256(b"signature value").digest()
    token = asyncio.run(stamper.async_timestamp(digest, "sha256"))
    tst_info = token["content"]["encap_content_info"]["content"].parsed
    assert tst_info["message_imprint"]["hashed_message"].native == digest
    assert provider.requests == 1


def test_the_dummy_token_for_sizing_is_requested_once_per_digest(signing_pki: SigningPKI) -> None:
    provider = _TSA(signing_pki)
    stamper = ProviderTimeStamper(provider)
    for _ in range(3):
        asyncio.run(stamper.async_dummy_response("sha256"))
    assert provider.requests == 1
    assert len(list(stamper.cert_registry)) >= 1  # the TSA certificate, known before any real token


def test_revocation_info_merges_without_duplicates_and_is_false_when_empty() -> None:
    a = RevocationInfo(crls=(b"c1",), ocsp_responses=(b"o1",))
    b = RevocationInfo(crls=(b"c1", b"c2"), certificates=(b"x",))
    assert a.merged(b) == RevocationInfo(crls=(b"c1", b"c2"), ocsp_responses=(b"o1",), certificates=(b"x",))
    assert not RevocationInfo(certificates=(b"x",))
    assert a
