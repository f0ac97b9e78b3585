"""What signing needs from the rest of the platform, as small protocols.

``signing`` does not import ``timestamp``, ``ca`` or ``directory``.  The
composition root (``api/``) hands it:

* a **signer**: any pyHanko ``Signer``; in the platform a
  :class:`core.keys.pyhanko_signer.KeyStoreSigner`, built once per key and
  kept, so the key and certificates stay loaded;
* a **timestamp provider** (:class:`TimestampProvider`): ``stamp(request_der)
  -> response_der``, typically ``lambda der: tsa.respond(der).der`` on the
  in-process TSA, wrapped once in a :class:`ProviderTimeStamper` (a pyHanko
  ``TimeStamper``); an external TSA can be used through pyHanko's own
  ``HTTPTimeStamper`` instead;
* a **revocation provider** (:class:`RevocationProvider`): CRLs and OCSP
  responses for the certificates a signature depends on, produced in-process
  from the platform's own CA data, so long-term signatures are built offline.

pyHanko does the same with its ``TimeStamper`` and certvalidator's fetcher
backends: the signing code asks an interface, the deployment decides who answers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from asn1crypto import tsp
from pyhanko.sign.timestamps.api import TimeStamper

from core.errors import HengxinError
from signing.errors import TimestampFailed

logger = logging.getLogger(__name__)


@runtime_checkable
class TimestampProvider(Protocol):
    """An RFC 3161 timestamp authority reachable in-process."""

    def stamp(self, request_der: bytes) -> bytes:
        """Answer a DER ``TimeStampReq`` with a DER ``TimeStampResp`` (granted or rejected)."""
        ...


@dataclasses.dataclass(frozen=True)
class RevocationInfo:
    """Revocation data for a set of certificates, all DER.

    ``crls`` are CertificateLists, ``ocsp_responses`` complete OCSPResponses
    (status successful, basic response inside), ``certificates`` any extra
    certificates needed to check them (CRL issuers, OCSP responders whose
    certificates the responses do not carry).
    """

    crls: tuple[bytes, ...] = ()
    ocsp_responses: tuple[bytes, ...] = ()
    certificates: tuple[bytes, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.crls or self.ocsp_responses)

    def merged(self, other: RevocationInfo) -> RevocationInfo:
        """Both sets, duplicates removed, order kept."""

        def union(a: tuple[bytes, ...], b: tuple[bytes, ...]) -> tuple[bytes, ...]:
            return tuple(dict.fromkeys(a + b))

        return RevocationInfo(
            union(self.crls, other.crls),
            union(self.ocsp_responses, other.ocsp_responses),
            union(self.certificates, other.certificates),
        )


class RevocationProvider(Protocol):
    """Revocation information for certificates, answered in-process (no HTTP)."""

    def revocation_info(self, certificates: Sequence[bytes]) -> RevocationInfo:
        """CRLs and OCSP responses covering ``certificates`` (DER, leaf first, chains in any order).

        Return what is known; certificates the provider is not responsible for
        (foreign CAs, self-signed roots) may be left uncovered.  The caller
        decides whether what came back is enough.
        """
        ...


class ProviderTimeStamper(TimeStamper):
    """A pyHanko ``TimeStamper`` that asks a :class:`TimestampProvider` (or a plain callable) in-process.

    Build it once and keep it: pyHanko caches one dummy token per digest
    algorithm on the instance (to size signatures) and the TSA certificates
    it saw, so a long-lived instance asks the TSA exactly once per signature
    after the first.

    Failures of the provider that are not already Hengxin errors, and
    responses that are not DER ``TimeStampResp``, raise :class:`TimestampFailed`;
    a rejection response is turned into :class:`TimestampFailed` by the
    signing functions.
    """

    def __init__(self, provider: TimestampProvider | Callable[[bytes], bytes], *, include_nonce: bool = True) -> None:
        super().__init__(include_nonce=include_nonce)
        if isinstance(provider, TimestampProvider):
            self._stamp: Callable[[bytes], bytes] = provider.stamp
        elif callable(provider):
            self._stamp = provider
        else:
            raise TypeError("provider must have a stamp() method or be callable")

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        try:
            response_der = self._stamp(req.dump())
        except HengxinError:
            raise
        except Exception as e:
            logger.exception("the timestamp provider failed")
            raise TimestampFailed(
                "the timestamp authority failed", detail_zh="时间戳服务出错"
            ) from e
        try:
            response = tsp.TimeStampResp.load(response_der, strict=True)
            response["status"]["status"].native  # noqa: B018 - parse now, not inside pyHanko
        except Exception as e:
            raise TimestampFailed(
                "the timestamp authority returned a malformed response", detail_zh="时间戳服务返回的响应格式错误"
            ) from e
        return response
