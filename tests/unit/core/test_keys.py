import datetime as dt
import io
import json
import subprocess
from pathlib import Path

import jwt
import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from core.errors import KeyNotFound, KeyStoreError, UnsupportedAlgorithm, WrongPassphrase
from core.keys.base import KeyAlgorithm, SignatureScheme
from core.keys.file import FileKeyStore
from tests.secret_scan import find_private_keys


@pytest.fixture
def store(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(tmp_path / "keys", "correct horse battery staple", scrypt_log2_n=14)


def _verify(public_key, signature: bytes, data: bytes, scheme: SignatureScheme) -> None:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(scheme.hash()))
    elif isinstance(public_key, rsa.RSAPublicKey):
        pad = (padding.PSS(mgf=padding.MGF1(scheme.hash()), salt_length=padding.PSS.DIGEST_LENGTH)
               if scheme.padding == "pss" else padding.PKCS1v15())
        public_key.verify(signature, data, pad, scheme.hash())
    else:
        public_key.verify(signature, data)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_every_algorithm_signs_verifiably(store: FileKeyStore, algorithm: KeyAlgorithm) -> None:
    info = store.generate("test", algorithm)
    scheme = SignatureScheme(hash_algorithm=algorithm.default_hash)
    signature = store.sign(info.key_id, b"hello", scheme)
    _verify(store.public_key(info.key_id), signature, b"hello", scheme)
    assert info.algorithm is algorithm
    assert len(info.fingerprint) == 64


def test_rsa_pss_and_prehashed_ec(store: FileKeyStore) -> None:
    rsa_key = store.generate("rsa", "rsa-2048")
    scheme = SignatureScheme("sha256", padding="pss")
    _verify(store.public_key(rsa_key.key_id), store.sign(rsa_key.key_id, b"m", scheme), b"m", scheme)
    ec_key = store.generate("ec", "ec-p256")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"m")
    signature = store.sign(ec_key.key_id, digest.finalize(), SignatureScheme("sha256", prehashed=True))
    _verify(store.public_key(ec_key.key_id), signature, b"m", SignatureScheme("sha256"))


def test_scheme_that_does_not_fit_the_key_is_refused(store: FileKeyStore) -> None:
    ed = store.generate("ed", "ed25519")
    with pytest.raises(UnsupportedAlgorithm):
        store.sign(ed.key_id, b"x", SignatureScheme("sha256", prehashed=True))
    ec_key = store.generate("ec", "ec-p256")
    with pytest.raises(UnsupportedAlgorithm):
        store.sign(ec_key.key_id, b"x", SignatureScheme("md5"))
    with pytest.raises(UnsupportedAlgorithm):
        KeyAlgorithm.parse("dsa-1024")


def test_keys_persist_and_reopen_with_the_same_passphrase(tmp_path: Path) -> None:
    first = FileKeyStore(tmp_path / "keys", "pass-1", scrypt_log2_n=14)
    info = first.generate("persist", "ec-p384")
    second = FileKeyStore(tmp_path / "keys", "pass-1", scrypt_log2_n=14)
    signature = second.sign(info.key_id, b"data")
    _verify(info.public_key(), signature, b"data", SignatureScheme("sha384"))
    assert [k.key_id for k in second.list_keys()] == [info.key_id]


def test_wrong_passphrase_is_reported_as_such(tmp_path: Path) -> None:
    FileKeyStore(tmp_path / "keys", "right", scrypt_log2_n=14).generate("k", "ec-p256")
    with pytest.raises(WrongPassphrase) as caught:
        FileKeyStore(tmp_path / "keys", "wrong", scrypt_log2_n=14)
    assert caught.value.code == "keys.wrong_passphrase"


def test_default_kdf_is_scrypt_2_17(tmp_path: Path) -> None:
    FileKeyStore(tmp_path / "keys", "p")
    meta = json.loads((tmp_path / "keys" / "keystore.json").read_text())
    assert (meta["kdf"], meta["log2_n"], meta["r"], meta["p"]) == ("scrypt", 17, 8, 1)


def test_key_files_are_private_and_hold_no_clear_private_key(store: FileKeyStore, tmp_path: Path) -> None:
    for algorithm in KeyAlgorithm:
        store.generate("scan", algorithm)
    for path in (tmp_path / "keys").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    assert find_private_keys(tmp_path) == []


def test_the_scanner_does_find_a_clear_key(tmp_path: Path) -> None:
    # The check above is only worth something if the scanner can fail.
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (tmp_path / "leak.bin").write_bytes(b"junk" + der + b"junk")
    assert find_private_keys(tmp_path)


def test_tampered_header_or_body_does_not_decrypt(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys", "p", scrypt_log2_n=14)
    info = store.generate("t", "ec-p256")
    path = tmp_path / "keys" / f"{info.key_id}.key"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x01
    path.write_bytes(bytes(blob))
    fresh = FileKeyStore(tmp_path / "keys", "p", scrypt_log2_n=14)
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        fresh.sign(info.key_id, b"x")


def test_unknown_key_is_not_found(store: FileKeyStore) -> None:
    with pytest.raises(KeyNotFound):
        store.sign("ec-0000", b"x")
    with pytest.raises(KeyNotFound):
        store.info("../etc/passwd")


def test_a_key_is_read_from_disk_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileKeyStore(tmp_path / "keys", "p", scrypt_log2_n=14)
    info = store.generate("cache", "ec-p256")
    fresh = FileKeyStore(tmp_path / "keys", "p", scrypt_log2_n=14)
    reads = []
    original = fresh._read
    monkeypatch.setattr(fresh, "_read", lambda key_id: reads.append(key_id) or original(key_id))
    for _ in range(20):
        fresh.sign(info.key_id, b"x")
    assert len(reads) <= 2  # public info once, private key once


def _self_signed(private_key, algorithm: KeyAlgorithm) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "测试根 CA")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
    )
    hash_algorithm = None if algorithm is KeyAlgorithm.ED25519 else SignatureScheme(algorithm.default_hash).hash()
    return builder.sign(private_key, hash_algorithm)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_adapter_signs_certificates_that_openssl_verifies(store: FileKeyStore, tmp_path: Path,
                                                          algorithm: KeyAlgorithm) -> None:
    info = store.generate("root", algorithm)
    adapter = store.private_key(info.key_id)
    certificate = _self_signed(adapter, algorithm)
    pem = tmp_path / "root.pem"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", pem, pem],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": OK" in result.stdout


def test_adapter_refuses_to_export(store: FileKeyStore) -> None:
    adapter = store.private_key(store.generate("x", "ec-p256").key_id)
    assert isinstance(adapter, ec.EllipticCurvePrivateKey)
    with pytest.raises(UnsupportedAlgorithm):
        adapter.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    with pytest.raises(UnsupportedAlgorithm):
        adapter.private_numbers()


def test_pyjwt_token_signed_through_the_store_verifies_with_the_public_key(store: FileKeyStore) -> None:
    info = store.generate("jwt", "ec-p256")
    token = jwt.encode({"sub": "张伟"}, store.private_key(info.key_id), algorithm="ES256")
    assert jwt.decode(token, info.public_key(), algorithms=["ES256"])["sub"] == "张伟"
    ed = store.generate("jwt-ed", "ed25519")
    token = jwt.encode({"sub": "x"}, store.private_key(ed.key_id), algorithm="EdDSA")
    assert jwt.decode(token, ed.public_key(), algorithms=["EdDSA"])["sub"] == "x"


@pytest.mark.parametrize("algorithm", ["ec-p256", "rsa-2048", "ed25519"])
def test_pyhanko_signer_signs_a_pdf_that_pyhanko_validates(store: FileKeyStore, algorithm: str) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from core.keys.pyhanko_signer import KeyStoreSigner

    info = store.generate("pdf", algorithm)
    certificate = _self_signed(store.private_key(info.key_id), KeyAlgorithm(algorithm))
    asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    signer = KeyStoreSigner(store, info.key_id, asn1_cert)
    pdf = _minimal_pdf()
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    output = signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer)
    status = validate_pdf_signature(PdfFileReader(output).embedded_signatures[0],
                                    ValidationContext(trust_roots=[asn1_cert]))
    assert status.intact and status.valid and status.trusted


def _minimal_pdf() -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    page = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
    })
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_ed25519_adapter_matches_cryptography_interface(store: FileKeyStore) -> None:
    info = store.generate("ed", "ed25519")
    adapter = store.private_key(info.key_id)
    assert isinstance(adapter, ed25519.Ed25519PrivateKey)
    signature = adapter.sign(b"msg")
    info.public_key().verify(signature, b"msg")
