"""The running service, checked over HTTP by tools nobody here wrote: openssl verify/crl/ocsp/pkcs12 and pkilint."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.ca.conftest import PROFILE_REQUESTS, LiveServer, make_csr, shared_live_server  # noqa: F401
from tests.interop.ca.conftest import lint_certificate, lint_chain, lint_ocsp, lint_revocation_list, serious
from tests.secret_scan import find_private_keys, find_strings

KEY_TYPES = {"server-tls": "rsa-2048", "person-sign": "ec-p384", "organisation-seal": "ed25519"}


@pytest.fixture(scope="module")
def pem_files(shared_live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    """root.pem and issuing.pem fetched from the public CA certificate URLs."""
    directory = tmp_path_factory.mktemp("pem")
    files = {}
    with httpx.Client(base_url=shared_live_server.url) as anonymous:
        for name in ("root", "issuing"):
            response = anonymous.get(f"/ca/{name}.pem")
            assert response.status_code == 200
            files[name] = directory / f"{name}.pem"
            files[name].write_bytes(response.content)
    files["chain"] = directory / "chain.pem"
    files["chain"].write_bytes(files["issuing"].read_bytes() + files["root"].read_bytes())
    return files


def issue_with_csr(server: LiveServer, profile: str, key_type: str = "ec-p256", **extra) -> tuple[dict, object]:
    from tests.integration.ca.conftest import make_key

    key = make_key(key_type)
    csr, _ = make_csr("placeholder", key=key)
    request = {"profile": profile, "csr": csr.decode(), **PROFILE_REQUESTS[profile], **extra}
    with server.client() as client:
        response = client.post("/api/v1/certificates", json=request)
    assert response.status_code == 201, response.text
    return response.json(), key


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("profile", list(PROFILE_REQUESTS))
def test_each_profile_issued_over_http_passes_openssl_verify_and_pkilint(
    shared_live_server: LiveServer, pem_files, openssl, tmp_path: Path, profile: str  # noqa: F811
) -> None:
    body, _ = issue_with_csr(shared_live_server, profile, KEY_TYPES.get(profile, "ec-p256"))
    leaf = write(tmp_path / "leaf.pem", body["certificate"]["certificate_pem"])
    result = openssl("verify", "-x509_strict", "-CAfile", pem_files["root"], "-untrusted", pem_files["issuing"], leaf)
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result.stdout + result.stderr
    findings = lint_certificate(leaf)
    assert serious(findings) == [], findings
    assert serious(lint_chain(pem_files["issuing"], leaf)) == []


def test_hierarchy_certificates_pass_openssl_verify_and_pkilint(
    shared_live_server: LiveServer, pem_files, openssl, tmp_path: Path  # noqa: F811
) -> None:
    with shared_live_server.client() as client:
        created = client.post("/api/v1/cas", json={"name": "dept-interop", "permitted_dns": ["interop.gov.cn"]})
        assert created.status_code == 201, created.text
    sub_ca = write(tmp_path / "sub.pem", created.json()["certificate_pem"])
    for path, untrusted in ((pem_files["root"], None), (pem_files["issuing"], None), (sub_ca, None)):
        args = ["verify", "-x509_strict", "-CAfile", pem_files["root"]]
        if untrusted:
            args += ["-untrusted", untrusted]
        result = openssl(*args, path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert serious(lint_certificate(path)) == [], path.name
    assert serious(lint_chain(pem_files["root"], pem_files["issuing"])) == []
    # Each CA's delegated OCSP responder certificate.
    for ca in shared_live_server.ca.list_cas():
        responder = write(tmp_path / f"{ca.name}-ocsp.pem",
                          ca.ocsp_certificate.public_bytes(serialization.Encoding.PEM))
        ca_pem = write(tmp_path / f"{ca.name}.pem", ca.certificate_pem)
        chain = b"".join(c.certificate_pem for c in shared_live_server.ca.chain(ca.name)[1:])
        args = ["verify", "-x509_strict", "-CAfile", pem_files["root"], "-purpose", "ocsphelper"]
        if chain:
            args += ["-untrusted", write(tmp_path / f"{ca.name}-chain.pem", ca.certificate_pem + chain)]
        else:
            args += ["-untrusted", ca_pem]
        result = openssl(*args, responder)
        assert result.returncode == 0, result.stdout + result.stderr
        assert serious(lint_certificate(responder)) == [], ca.name


def test_ocsp_and_crl_over_http_before_and_after_revocation(
    shared_live_server: LiveServer, pem_files, openssl, tmp_path: Path  # noqa: F811
) -> None:
    server = shared_live_server
    body, _ = issue_with_csr(server, "person-auth")
    leaf = write(tmp_path / "leaf.pem", body["certificate"]["certificate_pem"])
    url = f"{server.url}/ocsp"

    def ask(*extra: str, out: str) -> str:
        result = openssl("ocsp", "-issuer", pem_files["issuing"], "-cert", leaf, "-url", url,
                         "-CAfile", pem_files["root"], "-respout", tmp_path / out, *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Response verify OK" in result.stderr + result.stdout, result.stderr
        return result.stdout

    assert f"{leaf}: good" in ask(out="good-nonce.der")
    assert f"{leaf}: good" in ask("-no_nonce", out="good.der")
    assert serious(lint_ocsp(tmp_path / "good-nonce.der")) == []

    with server.client() as client:
        revoked = client.post(f"/api/v1/certificates/{body['certificate']['id']}/revoke",
                              json={"reason": "keyCompromise"})
        assert revoked.status_code == 200
    # OCSP knows at once, with and without a nonce (the cached pre-signed response is not reused).
    with_nonce = ask(out="revoked-nonce.der")
    assert f"{leaf}: revoked" in with_nonce and "Reason: keyCompromise" in with_nonce
    assert f"{leaf}: revoked" in ask("-no_nonce", out="revoked.der")
    assert serious(lint_ocsp(tmp_path / "revoked.der")) == []

    # The CRL carries it after the publisher runs (forced here).
    server.ca.publish_crl("issuing")
    with httpx.Client(base_url=server.url) as anonymous:
        crl_path = write(tmp_path / "issuing.crl", anonymous.get("/crl/issuing.crl").content)
    result = openssl("crl", "-in", crl_path, "-inform", "DER", "-CAfile", pem_files["chain"], "-noout")
    assert result.returncode == 0 and "verify OK" in result.stderr + result.stdout, result.stderr
    text = openssl("crl", "-in", crl_path, "-inform", "DER", "-noout", "-text").stdout
    assert body["certificate"]["serial"].upper().lstrip("0") in text.replace(":", "").upper()
    assert serious(lint_revocation_list(crl_path)) == []
    verify = openssl("verify", "-crl_check", "-CAfile", pem_files["root"], "-untrusted", pem_files["issuing"],
                     "-CRLfile", write(tmp_path / "issuing-crl.pem", x509.load_der_x509_crl(crl_path.read_bytes())
                                       .public_bytes(serialization.Encoding.PEM)), leaf)
    assert verify.returncode != 0 and "certificate revoked" in verify.stdout + verify.stderr


def test_revoked_sub_ca_is_in_the_root_crl_served_over_http(
    shared_live_server: LiveServer, pem_files, openssl, tmp_path: Path  # noqa: F811
) -> None:
    server = shared_live_server
    with server.client() as client:
        created = client.post("/api/v1/cas", json={"name": "dept-revoked", "parent": "root"}).json()
        record = client.get(f"/api/v1/certificates/{created['serial']}").json()
        assert record["profile"] == "sub-ca"
        assert client.post(f"/api/v1/certificates/{record['id']}/revoke",
                           json={"reason": "cessationOfOperation"}).status_code == 200
        assert client.post("/api/v1/cas/root/crl").status_code == 200
    with httpx.Client(base_url=server.url) as anonymous:
        crl_path = write(tmp_path / "root.crl", anonymous.get("/crl/root.crl").content)
    assert openssl("crl", "-in", crl_path, "-inform", "DER", "-CAfile", pem_files["root"], "-noout").returncode == 0
    crl = x509.load_der_x509_crl(crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(created["serial"], 16)) is not None
    assert serious(lint_revocation_list(crl_path, "ARL")) == []


def test_pkcs12_opens_with_openssl_only_with_its_password_and_no_key_is_kept(
    shared_live_server: LiveServer, openssl, tmp_path: Path  # noqa: F811
) -> None:
    server = shared_live_server
    password = "Zhèngshū-密码-2026"
    with server.client() as client:
        response = client.post("/api/v1/certificates", json={
            "profile": "person-auth", "subject": {"CN": "赵敏"}, "sans": {"email": ["zhao.min@example.gov.cn"]},
            "key": {"mode": "server", "pkcs12_password": password, "algorithm": "rsa-2048"}})
    assert response.status_code == 201, response.text
    blob = base64.b64decode(response.json()["pkcs12_base64"])
    p12 = write(tmp_path / "f.p12", blob)
    good = openssl("pkcs12", "-in", p12, "-passin", f"pass:{password}", "-nokeys")
    assert good.returncode == 0 and "BEGIN CERTIFICATE" in good.stdout, good.stderr
    info = openssl("pkcs12", "-in", p12, "-passin", f"pass:{password}", "-info", "-noout")
    assert "AES-256-CBC" in info.stderr + info.stdout and "sha256" in (info.stderr + info.stdout).lower()
    wrong = openssl("pkcs12", "-in", p12, "-passin", "pass:not the password", "-nokeys")
    assert wrong.returncode != 0
    # The private key is nowhere on the server's disk: not in the database, not under var/.
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, _certificate, _chain = pkcs12.load_key_and_certificates(blob, password.encode())
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    raw_secret = key.private_numbers().d.to_bytes(256, "big").lstrip(b"\x00")
    var = server.settings.data_dir
    assert find_private_keys(var) == []
    assert find_strings(var, [der_key, raw_secret, blob, password.encode()]) == []
