"""pyHanko's HTTP timestamp client and rfc3161-client against the running service.

pyHanko insists on the reply content type ``application/timestamp-reply``
exactly and sends one extra request first (a digest of empty data, to size
the signature); both requests are granted and recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from io import BytesIO

import pytest
import rfc3161_client
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
from pyhanko.sign.validation import validate_pdf_timestamp
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext

from tests.integration.timestamp.tsa_platform import LiveTSA, live_tsa

DATA = b"Hengxin live client interop\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTSA]:
    yield from live_tsa(tmp_path_factory.mktemp("live-clients"))


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def _context(served: LiveTSA) -> ValidationContext:
    return ValidationContext(
        trust_roots=[_asn1(served.root)],
        other_certs=[_asn1(c) for c in served.intermediates],
        allow_fetching=False,
        revocation_mode="soft-fail",
    )


def _blank_pdf() -> bytes:
    writer = PdfFileWriter()
    writer.insert_page(
        generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Page"),
                generic.NameObject("/MediaBox"): generic.ArrayObject(
                    [generic.NumberObject(n) for n in (0, 0, 595, 842)]
                ),
            }
        )
    )
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pyhanko_http_timestamper_gets_a_token_that_pyhanko_validates(served: LiveTSA) -> None:
    before = served.counts()
    timestamper = RequestsHTTPTimeStamper(f"{served.url}/tsa")

    signed_data = asyncio.run(timestamper.async_timestamp(hashlib.sha256(DATA).digest(), "sha256"))
    result = asyncio.run(
        validate_tst_signed_data(
            signed_data["content"], _context(served), lambda name: hashlib.new(name, DATA).digest()
        )
    )

    assert result["intact"] and result["valid"]
    assert result["trust_problem_indic"] is None
    tokens, audited = served.counts()
    assert tokens - before[0] == audited - before[1] >= 1


def test_pyhanko_document_timestamp_on_a_pdf_validates(served: LiveTSA) -> None:
    timestamper = RequestsHTTPTimeStamper(f"{served.url}/tsa")
    writer = IncrementalPdfFileWriter(BytesIO(_blank_pdf()))
    output = BytesIO()

    PdfTimeStamper(timestamper).timestamp_pdf(writer, "sha256", output=output)
    signature = PdfFileReader(output).embedded_signatures[0]
    status = validate_pdf_timestamp(signature, validation_context=_context(served))

    assert status.intact and status.valid and status.trusted
    assert status.timestamp is not None


def test_pyhanko_fails_on_our_rejection_instead_of_using_it(served: LiveTSA) -> None:
    # asn1crypto's TimeStampResp makes the token mandatory, so pyHanko cannot parse a
    # rejection (RFC 3161 makes it optional): it fails with ValueError, never with a token.
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError

    timestamper = RequestsHTTPTimeStamper(f"{served.url}/tsa")
    with pytest.raises((TimestampRequestError, ValueError)):
        asyncio.run(timestamper.async_timestamp(hashlib.sha1(DATA).digest(), "sha1"))  # noqa: S324 - refused


@pytest.mark.parametrize("algorithm", [rfc3161_client.HashAlgorithm.SHA256, rfc3161_client.HashAlgorithm.SHA512])
def test_rfc3161_client_parses_and_verifies_live_responses(
    served: LiveTSA, algorithm: rfc3161_client.HashAlgorithm
) -> None:
    request = rfc3161_client.TimestampRequestBuilder().data(DATA).hash_algorithm(algorithm).build()

    reply = served.post_query(request.as_bytes())
    response = rfc3161_client.decode_timestamp_response(reply.content)

    assert reply.headers["content-type"] == "application/timestamp-reply"
    assert response.status == rfc3161_client.PKIStatus.GRANTED
    assert response.tst_info.nonce == request.nonce
    assert response.tst_info.ordering is False
    builder = (
        rfc3161_client.VerifierBuilder.from_request(request)
        .add_root_certificate(served.root)
        .tsa_certificate(served.tsa_certificate)
    )
    for intermediate in served.intermediates:
        builder = builder.add_intermediate_certificate(intermediate)
    verifier = builder.build()
    assert verifier.verify_message(response, DATA)
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify_message(response, DATA + b"x")
    record = served.service.get(response.tst_info.serial_number)
    assert record.message_imprint == hashlib.new(algorithm.name.lower(), DATA).hexdigest()
