"""POST /tsa and /api/v1/timestamps over HTTP: content types, limits, bad input, records, verification, auth."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core, tsp
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, create_api_token
from tests.integration.timestamp.tsa_platform import counts, tsa_platform
from timestamp.asn1 import TimeStampResp
from timestamp.request import build_request

DATA = "政务文件 for the timestamp API\n".encode()
QUERY = {"Content-Type": "application/timestamp-query"}
EXTRA_POLICY = "1.3.6.1.4.1.32473.2.7"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    opened = tsa_platform(tmp_path_factory.mktemp("tsa-api"), tsa={"accepted_policies": [EXTRA_POLICY]})
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.settings, platform), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(platform: Platform) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"}


def _reply(response: object) -> TimeStampResp:
    assert response.status_code in (200, 503), response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/timestamp-reply"  # type: ignore[attr-defined]
    return TimeStampResp.load(response.content)  # type: ignore[attr-defined]


def _failure(response: object) -> set[str] | None:
    status = _reply(response)["status"]
    return status["fail_info"].native if status["status"].native == "rejection" else None


def _tst_info(reply: TimeStampResp) -> tsp.TSTInfo:
    return tsp.TSTInfo.load(bytes(reply["time_stamp_token"]["content"]["encap_content_info"]["content"]))


def _query(digest_oid: str, digest: bytes) -> bytes:
    return tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": digest_oid}),
                "hashed_message": digest,
            },
            "cert_req": True,
        }
    ).dump()


# -- the protocol endpoint ----------------------------------------------------------------------------


def test_a_query_is_granted_with_nonce_policy_and_certificates(client: TestClient, platform: Platform) -> None:
    before = counts(platform)
    response = client.post("/tsa", content=build_request(DATA, nonce=424242), headers=QUERY)

    reply = _reply(response)
    info = _tst_info(reply)
    certificates = reply["time_stamp_token"]["content"]["certificates"]

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert reply["status"]["status"].native == "granted"
    assert info["nonce"].native == 424242
    assert info["policy"].dotted == platform.settings.tsa.default_policy
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha256(DATA).digest()
    assert info["accuracy"]["seconds"].native == 1
    subjects = [c.chosen.subject.native["common_name"] for c in certificates]
    assert sorted(subjects) == ["Hengxin Issuing CA", "Hengxin Time-Stamping Authority"]  # the root: the client's
    assert counts(platform) == (before[0] + 1, before[1] + 1)


def test_cert_req_false_leaves_the_certificates_out_and_a_known_policy_is_honoured(client: TestClient) -> None:
    response = client.post(
        "/tsa", content=build_request(DATA, cert_req=False, policy=EXTRA_POLICY, nonce=False), headers=QUERY
    )

    reply = _reply(response)
    assert not reply["time_stamp_token"]["content"]["certificates"]
    assert _tst_info(reply)["policy"].dotted == EXTRA_POLICY
    assert _tst_info(reply)["nonce"].native is None


def test_a_media_type_parameter_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/tsa", content=build_request(DATA), headers={"Content-Type": "Application/Timestamp-Query; charset=binary"}
    )
    assert _failure(response) is None


@pytest.mark.parametrize(
    ("request_der", "failure"),
    [
        (b"", {"bad_data_format"}),
        (b"garbage that is not DER", {"bad_data_format"}),
        (build_request(DATA)[:-5], {"bad_data_format"}),
        (build_request(DATA) + b"\x00", {"bad_data_format"}),
        (_query("1.2.3.4.5.6.7", b"\x01" * 32), {"bad_alg"}),
        (_query("1.3.14.3.2.26", hashlib.sha1(DATA).digest()), {"bad_alg"}),  # noqa: S324 - SHA-1 is refused
        (build_request(DATA, hash_algorithm="sha3_256"), {"bad_alg"}),  # not in [tsa] hash_algorithms
        (_query("2.16.840.1.101.3.4.2.1", b"\x01" * 20), {"bad_data_format"}),  # SHA-256 imprint of 20 bytes
        (build_request(DATA, policy="1.3.6.1.4.1.32473.2.99"), {"unaccepted_policy"}),
    ],
    ids=[
        "empty",
        "garbage",
        "truncated",
        "trailing-byte",
        "unknown-hash-oid",
        "sha1",
        "unconfigured-hash",
        "short-imprint",
        "unknown-policy",
    ],
)
def test_bad_queries_get_a_rejection_reply_and_write_nothing(
    client: TestClient, platform: Platform, request_der: bytes, failure: set[str]
) -> None:
    before = counts(platform)
    response = client.post("/tsa", content=request_der, headers=QUERY)

    assert response.status_code == 200
    assert _failure(response) == failure
    assert counts(platform) == before


def test_a_request_extension_is_refused(client: TestClient) -> None:
    request = tsp.TimeStampReq.load(build_request(DATA))
    request["extensions"] = [{"extn_id": "1.2.3.4", "critical": False, "extn_value": core.OctetString(b"x").dump()}]
    response = client.post("/tsa", content=request.dump(), headers=QUERY)
    assert _failure(response) == {"unaccepted_extensions"}


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/octet-stream", "application/timestamp-reply", None]
)
def test_a_wrong_content_type_is_a_415_problem(
    client: TestClient, platform: Platform, content_type: str | None
) -> None:
    before = counts(platform)
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/tsa", content=build_request(DATA), headers=headers)

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "request.unsupported_media_type"
    assert response.json()["accepted"] == "application/timestamp-query"
    assert counts(platform) == before


def test_an_oversized_body_is_a_413_problem_by_length_and_while_streaming(client: TestClient) -> None:
    declared = client.post("/tsa", content=b"\x30" * (64 * 1024 + 1), headers=QUERY)

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"\x30" * 8192

    streamed = client.post("/tsa", content=chunks(), headers=QUERY)

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["code"] == "request.body_too_large"
        assert response.json()["limit"] == 65536
    exactly = client.post("/tsa", content=b"\x30" * (64 * 1024), headers=QUERY)
    assert _failure(exactly) == {"bad_data_format"}


def test_get_on_the_protocol_endpoint_is_405(client: TestClient) -> None:
    response = client.get("/tsa")
    assert (response.status_code, response.json()["code"]) == (405, "request.method_not_allowed")


def test_a_failed_commit_is_a_503_system_failure_reply(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = counts(platform)

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(platform.require_audit(), "append_many", refuse)
    response = client.post("/tsa", content=build_request(DATA), headers=QUERY)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert _failure(response) == {"system_failure"}
    assert counts(platform) == before


# -- records -------------------------------------------------------------------------------------------


def _stamp(client: TestClient, data: bytes, **kwargs: object) -> tuple[bytes, int]:
    response = client.post("/tsa", content=build_request(data, **kwargs), headers=QUERY)  # type: ignore[arg-type]
    reply = _reply(response)
    return response.content, int(_tst_info(reply)["serial_number"].native)


def test_a_record_is_fetched_by_serial(client: TestClient, admin: dict[str, str]) -> None:
    _, serial = _stamp(client, b"fetch me", nonce=7, hash_algorithm="sha384")

    record = client.get(f"/api/v1/timestamps/{serial:x}", headers=admin)
    upper = client.get(f"/api/v1/timestamps/0x{serial:X}", headers=admin)

    assert record.status_code == 200
    assert record.json() == upper.json()
    body = record.json()
    assert body["serial"] == f"{serial:x}"
    assert body["hash_algorithm"] == "sha384"
    assert body["message_imprint"] == hashlib.sha384(b"fetch me").hexdigest()
    assert body["nonce"] == "7"
    assert body["requester"] == "testclient"
    assert body["cert_req"] is True


def test_an_unknown_or_malformed_serial_is_a_problem(client: TestClient, admin: dict[str, str]) -> None:
    missing = client.get("/api/v1/timestamps/abcdef0123", headers=admin)
    malformed = client.get("/api/v1/timestamps/not-hex", headers=admin)
    assert (missing.status_code, missing.json()["code"]) == (404, "timestamp.not_found")
    assert (malformed.status_code, malformed.json()["code"]) == (400, "request.invalid")


def test_records_are_listed_with_a_cursor_and_filters(client: TestClient, admin: dict[str, str]) -> None:
    data = b"listed document"
    serials = [_stamp(client, data)[1] for _ in range(5)]
    imprint = hashlib.sha256(data).hexdigest()

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2, "message_imprint": imprint, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/timestamps", params=params, headers=admin).json()
        seen += [item["serial"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert seen == [f"{s:x}" for s in serials]
    future = client.get("/api/v1/timestamps", params={"since": "2100-01-01T00:00:00Z"}, headers=admin).json()
    assert future["items"] == []
    other = client.get("/api/v1/timestamps", params={"requester": "192.0.2.99"}, headers=admin).json()
    assert other["items"] == []
    bad = client.get("/api/v1/timestamps", params={"cursor": "!!!"}, headers=admin)
    assert (bad.status_code, bad.json()["code"]) == (400, "request.invalid")


# -- verification ---------------------------------------------------------------------------------------


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_a_token_verifies_against_its_data_or_digest(client: TestClient, admin: dict[str, str]) -> None:
    reply, serial = _stamp(client, DATA)
    token = cms.ContentInfo.load(TimeStampResp.load(reply)["time_stamp_token"].dump()).dump()

    by_data = client.post(
        "/api/v1/timestamps/verify", json={"token": _b64(reply), "data": _b64(DATA)}, headers=admin
    ).json()
    by_digest = client.post(
        "/api/v1/timestamps/verify",
        json={"token": _b64(token), "digest": hashlib.sha256(DATA).hexdigest()},
        headers=admin,
    ).json()

    for result in (by_data, by_digest):
        assert result["valid"] is True and result["code"] is None
        assert result["timestamp"]["serial"] == f"{serial:x}"
        assert result["record"]["serial"] == f"{serial:x}"
        assert result["tsa_certificate"]["subject"].startswith("CN=Hengxin Time-Stamping Authority")
        assert [p["subject"].split(",")[0] for p in result["certification_path"]] == [
            "CN=Hengxin Time-Stamping Authority",
            "CN=Hengxin Issuing CA",
            "CN=Hengxin Root CA",
        ]


def test_multipart_upload_of_the_reply_and_the_file(client: TestClient, admin: dict[str, str]) -> None:
    reply, _ = _stamp(client, DATA)
    good = client.post(
        "/api/v1/timestamps/verify", files={"token": ("doc.tsr", reply), "data": ("doc", DATA)}, headers=admin
    ).json()
    changed = client.post(
        "/api/v1/timestamps/verify", files={"token": ("doc.tsr", reply), "data": ("doc", DATA + b"!")}, headers=admin
    ).json()
    assert good["valid"] is True
    assert (changed["valid"], changed["code"]) == (False, "timestamp.imprint_mismatch")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"data": _b64(b"other data")}, "timestamp.imprint_mismatch"),
        ({"digest": "00" * 32}, "timestamp.imprint_mismatch"),
    ],
)
def test_a_token_that_does_not_cover_the_data_is_reported_invalid(
    client: TestClient, admin: dict[str, str], body: dict[str, str], code: str
) -> None:
    reply, _ = _stamp(client, DATA)
    result = client.post("/api/v1/timestamps/verify", json={"token": _b64(reply), **body}, headers=admin)
    assert result.status_code == 200
    assert (result.json()["valid"], result.json()["code"]) == (False, code)


def test_malformed_and_rejected_tokens_are_reported_invalid(client: TestClient, admin: dict[str, str]) -> None:
    rejection = client.post("/tsa", content=b"garbage", headers=QUERY).content
    for token, code in ((b"not a token", "timestamp.malformed"), (rejection, "timestamp.not_granted")):
        result = client.post(
            "/api/v1/timestamps/verify", json={"token": _b64(token), "data": _b64(DATA)}, headers=admin
        ).json()
        assert (result["valid"], result["code"]) == (False, code)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"data": None}, 400, "timestamp.request_invalid"),  # neither data nor digest
        ({"data": _b64(DATA), "digest": "00" * 32}, 400, "timestamp.request_invalid"),  # both
        ({"data": "***"}, 400, "request.invalid"),
        ({"digest": "zz"}, 400, "request.validation_failed"),
        ({"data": _b64(DATA), "surprise": 1}, 400, "request.validation_failed"),
    ],
)
def test_verification_input_errors_are_problems(
    client: TestClient, admin: dict[str, str], body: dict[str, object], status: int, code: str
) -> None:
    reply, _ = _stamp(client, DATA)
    response = client.post("/api/v1/timestamps/verify", json={"token": _b64(reply), **body}, headers=admin)
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_verification_wants_json_or_multipart(client: TestClient, admin: dict[str, str]) -> None:
    broken = client.post(
        "/api/v1/timestamps/verify", content=b'{"token": ', headers={**admin, "Content-Type": "application/json"}
    )
    wrong = client.post("/api/v1/timestamps/verify", content=b"x", headers={**admin, "Content-Type": "text/plain"})
    assert (broken.status_code, broken.json()["code"]) == (400, "request.malformed_json")
    assert (wrong.status_code, wrong.json()["code"]) == (415, "request.unsupported_media_type")


def test_records_and_verification_need_timestamps_read(client: TestClient, platform: Platform) -> None:
    issuer_only = create_api_token(platform, "tsa-issuer-only", "timestamps.issue")
    for method, path in (
        ("GET", "/api/v1/timestamps"),
        ("GET", "/api/v1/timestamps/ab"),
        ("POST", "/api/v1/timestamps/verify"),
    ):
        anonymous = client.request(method, path)
        denied = client.request(method, path, headers={"Authorization": f"Bearer {issuer_only}"})
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "auth.unauthenticated")
        assert (denied.status_code, denied.json()["code"]) == (403, "auth.forbidden")
        assert denied.json()["permission"] == "timestamps.read"


# -- authentication on /tsa ------------------------------------------------------------------------------


def test_require_authentication_asks_for_timestamps_issue(tmp_path: Path) -> None:
    platform = tsa_platform(tmp_path, tsa={"require_authentication": True})
    try:
        issuer = create_api_token(platform, "document-system", "timestamps.issue")
        reader = create_api_token(platform, "auditor", "timestamps.read")
        with TestClient(create_app(platform.settings, platform)) as client:
            anonymous = client.post("/tsa", content=build_request(DATA), headers=QUERY)
            denied = client.post(
                "/tsa", content=build_request(DATA), headers={**QUERY, "Authorization": f"Bearer {reader}"}
            )
            granted = client.post(
                "/tsa", content=build_request(DATA), headers={**QUERY, "Authorization": f"Bearer {issuer}"}
            )
            serial = int(_tst_info(_reply(granted))["serial_number"].native)

        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "auth.unauthenticated")
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert (denied.status_code, denied.json()["code"]) == (403, "auth.forbidden")
        assert denied.json()["permission"] == "timestamps.issue"
        assert platform.services["tsa"].get(serial).requester == "token:document-system"
        assert counts(platform) == (1, 1)
    finally:
        platform.close()
