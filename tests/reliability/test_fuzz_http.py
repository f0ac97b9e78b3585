"""Fuzzing every parser that takes outside bytes, through the HTTP app in-process.

Hypothesis drives mutated valid inputs and random bytes into the CSR, OCSP,
TSA, JSON, PDF and CMS parsers.  Whatever arrives, the service must answer
with a clean 4xx problem document (``/api`` routes) or a protocol error
(``/ocsp``: an OCSPResponse, ``/tsa``: a TimeStampResp), never a 5xx, never a
stack trace, and within a bounded time.  Budgets are small on purpose
(``max_examples``); the ``make fuzz`` target is where long runs belong.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, initialise, open_platform
from tests.helpers import make_settings
from tests.reliability.conftest import csr_pem

REQUEST_TIMEOUT = 20.0  # seconds: an answer slower than this is a hang
FUZZ = settings(max_examples=40, deadline=dt.timedelta(seconds=15), derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    settings_ = make_settings(tmp_path_factory.mktemp("fuzz") / "var")
    initialise(settings_)
    opened = open_platform(settings_)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.settings, platform), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"
        yield test_client


@pytest.fixture(scope="module")
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


class Sender:
    """Sends one request with a hard time limit and checks the promises common to every answer."""

    def __init__(self, client: TestClient, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self.client = client
        self.pool = pool

    def __call__(self, method: str, path: str, **options: Any) -> httpx.Response:
        future = self.pool.submit(self.client.request, method, path, **options)
        try:
            response = future.result(timeout=REQUEST_TIMEOUT)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"{method} {path} did not answer within {REQUEST_TIMEOUT} s")
        body = response.content
        assert response.status_code < 500, (path, response.status_code, body[:500])
        assert b"Traceback" not in body and b'File "/' not in body, (path, body[:500])
        if path.startswith("/api/") and response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), (path, body[:300])
            problem = response.json()
            assert problem["status"] == response.status_code and "." in problem["code"], problem
        return response


@pytest.fixture(scope="module")
def send(client: TestClient, pool: concurrent.futures.ThreadPoolExecutor) -> Sender:
    return Sender(client, pool)


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """A valid encoding with a few bytes overwritten, cut short, or extended: the inputs that reach deep parsers."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(valid)
        for _ in range(draw(st.integers(0, 6))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
        if cut is not None:
            del data[cut:]
        return bytes(data) + draw(st.binary(max_size=8))

    return build()


def pem(der: bytes, label: str) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


VALID_CSR = x509.load_pem_x509_csr(csr_pem("fuzz.example.gov.cn").encode()).public_bytes(serialization.Encoding.DER)


# -- CSR --------------------------------------------------------------------------------------------------


@FUZZ
@given(der=st.one_of(mutated(VALID_CSR), st.binary(max_size=600)), as_pem=st.booleans())
def test_issue_with_mutated_or_random_csr_answers_a_clean_problem(send: Sender, der: bytes, as_pem: bool) -> None:
    csr = pem(der, "CERTIFICATE REQUEST") if as_pem else base64.b64encode(der).decode()
    response = send("POST", "/api/v1/certificates", json={"profile": "server-tls", "csr": csr})
    assert response.status_code in (201, 400), response.text
    if response.status_code == 400:
        assert response.json()["code"].startswith(("ca.", "request."))


@FUZZ
@given(text=st.text(max_size=300))
def test_issue_with_arbitrary_csr_text_answers_a_clean_problem(send: Sender, text: str) -> None:
    response = send("POST", "/api/v1/certificates", json={"profile": "server-tls", "csr": text})
    assert response.status_code == 400


# -- OCSP -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_ocsp_request(client: TestClient) -> bytes:
    issuer = x509.load_der_x509_certificate(client.get("/ca/issuing.crt").content)
    response = client.post("/api/v1/certificates", json={"profile": "server-tls", "csr": csr_pem("o.example.gov.cn")})
    certificate = x509.load_pem_x509_certificate(response.json()["certificate"]["certificate_pem"].encode())
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256())
    builder = builder.add_extension(x509.OCSPNonce(b"\x11" * 16), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def assert_ocsp_answer(response: httpx.Response) -> None:
    assert response.status_code == 200, response.content[:300]
    assert response.headers["content-type"] == "application/ocsp-response"
    ocsp.load_der_ocsp_response(response.content)  # a well-formed OCSPResponse, whatever its status


@FUZZ
@given(data=st.data())
def test_ocsp_post_with_mutated_or_random_request_answers_an_ocsp_response(
    send: Sender, valid_ocsp_request: bytes, data: st.DataObject
) -> None:
    body = data.draw(st.one_of(mutated(valid_ocsp_request), st.binary(max_size=400)))
    assert_ocsp_answer(send("POST", "/ocsp", content=body, headers={"Content-Type": "application/ocsp-request"}))


@FUZZ
@given(data=st.data(), raw=st.booleans())
def test_ocsp_get_with_mutated_or_random_request_answers_an_ocsp_response(
    send: Sender, valid_ocsp_request: bytes, data: st.DataObject, raw: bool
) -> None:
    if raw:
        # Arbitrary path text, not even base64.
        tail = urllib.parse.quote(data.draw(st.text(min_size=1, max_size=120)), safe="")
    else:
        der = data.draw(st.one_of(mutated(valid_ocsp_request), st.binary(min_size=1, max_size=300)))
        tail = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    response = send("GET", f"/ocsp/{tail}")
    if response.status_code != 200:
        # Only a path the router cannot match at all may answer 4xx, and never with a stack trace.
        assert 400 <= response.status_code < 500
        return
    assert_ocsp_answer(response)


# -- TSA --------------------------------------------------------------------------------------------------


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp with the token OPTIONAL, as the RFC says (asn1crypto makes it mandatory)."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


VALID_TSQ = tsp.TimeStampReq({
    "version": 1,
    "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x5a" * 32},
    "nonce": 123456789,
    "cert_req": True,
}).dump()


@FUZZ
@given(body=st.one_of(mutated(VALID_TSQ), st.binary(max_size=300)))
def test_tsa_with_mutated_or_random_request_answers_a_timestamp_response(send: Sender, body: bytes) -> None:
    response = send("POST", "/tsa", content=body, headers={"Content-Type": "application/timestamp-query"})
    assert response.status_code == 200, response.content[:300]
    assert response.headers["content-type"] == "application/timestamp-reply"
    parsed = TimeStampResp.load(response.content)
    status = parsed["status"]["status"].native
    assert status in ("granted", "granted_with_mods", "rejection"), status
    assert (status == "rejection") == (not parsed["time_stamp_token"].native)


# -- JSON bodies ------------------------------------------------------------------------------------------

# POST routes that take a JSON body.  Routes that would start real work on success (backups, drills,
# key rotation) are left out: a random body that happened to be valid would run them.
JSON_ROUTES = [
    "/api/v1/certificates",
    "/api/v1/certificates/validate",
    "/api/v1/certificates/1/revoke",
    "/api/v1/certificates/1/renew",
    "/api/v1/cas",
    "/api/v1/tokens",
    "/api/v1/users",
    "/api/v1/departments",
    "/api/v1/groups",
    "/api/v1/roles",
    "/api/v1/timestamps/verify",
    "/api/v1/audit/verify",
    "/api/v1/auth/login",
]

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(path=st.sampled_from(JSON_ROUTES), value=JSON_VALUES)
def test_random_json_to_post_routes_answers_clean_problems(send: Sender, path: str, value: Any) -> None:
    response = send("POST", path, content=json.dumps(value), headers={"Content-Type": "application/json"})
    # A random value may be valid for a few routes (a department, a group ...); only 5xx and traces are bugs.
    assert response.status_code < 500


@FUZZ
@given(path=st.sampled_from(JSON_ROUTES), body=st.binary(max_size=300))
def test_random_bytes_to_post_routes_answer_clean_problems(send: Sender, path: str, body: bytes) -> None:
    response = send("POST", path, content=body, headers={"Content-Type": "application/json"})
    if path != "/api/v1/audit/verify":  # the one route here that reads no body
        assert 400 <= response.status_code < 500


# -- PDF and CMS uploads ----------------------------------------------------------------------------------


def minimal_pdf() -> bytes:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


VALID_PDF = minimal_pdf()


@FUZZ
@given(document=st.one_of(mutated(VALID_PDF), st.binary(max_size=400)))
def test_verify_with_mutated_or_random_pdf_answers_cleanly(send: Sender, document: bytes) -> None:
    response = send("POST", "/api/v1/signatures/verify", files={"file": ("x.pdf", document, "application/pdf")})
    assert response.status_code in (200, 400, 413, 422), response.text[:300]


@FUZZ
@given(document=st.one_of(mutated(VALID_PDF), st.binary(max_size=400)))
def test_document_timestamp_with_mutated_or_random_pdf_answers_cleanly(send: Sender, document: bytes) -> None:
    response = send("POST", "/api/v1/timestamps/pdf", files={"file": ("x.pdf", document, "application/pdf")})
    assert response.status_code in (200, 400, 413, 422), response.text[:300]


@pytest.fixture(scope="module")
def valid_cms(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A detached CMS SignedData over b"content" made with a throw-away key (untrusted, but well-formed)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs7

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "fuzz signer")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    return (pkcs7.PKCS7SignatureBuilder().set_data(b"content").add_signer(certificate, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature]))


@FUZZ
@given(data=st.data())
def test_verify_with_mutated_or_random_cms_answers_cleanly(send: Sender, valid_cms: bytes, data: st.DataObject) -> None:
    signature = data.draw(st.one_of(mutated(valid_cms), st.binary(max_size=400)))
    response = send("POST", "/api/v1/signatures/verify",
                    files={"file": ("x.p7s", signature, "application/pkcs7-signature"),
                           "content": ("content", b"content", "application/octet-stream")})
    assert response.status_code in (200, 400, 413, 422), response.text[:300]


def test_fuzz_module_leaves_the_audit_chain_intact(send: Sender) -> None:
    """Runs last in this module: whatever the fuzzers wrote, the audit chain still verifies."""
    response = send("POST", "/api/v1/audit/verify")
    assert response.status_code == 200, response.text
