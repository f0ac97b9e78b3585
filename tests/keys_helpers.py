"""Helpers shared by the key store tests: independent verification of what a store signs."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import time
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from core.keys.base import KeyAlgorithm, KeyStore, SignatureScheme

MESSAGE = "恒信 key custody test message".encode()


def verify_signature(public_key: Any, signature: bytes, data: bytes, scheme: SignatureScheme) -> None:
    """Verify with cryptography (PSS with a digest-length salt, as every backend signs); raises InvalidSignature."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(scheme.hash()))
    elif isinstance(public_key, rsa.RSAPublicKey):
        pad = (
            padding.PSS(mgf=padding.MGF1(scheme.hash()), salt_length=padding.PSS.DIGEST_LENGTH)
            if scheme.padding == "pss"
            else padding.PKCS1v15()
        )
        public_key.verify(signature, data, pad, scheme.hash())
    else:
        public_key.verify(signature, data)


def self_signed_certificate(
    private_key: Any, algorithm: KeyAlgorithm, common_name: str = "测试根 CA"
) -> x509.Certificate:
    """A CA certificate signed by ``private_key`` (a store adapter) with the key's default hash."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    public_key = private_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    hash_algorithm = None if algorithm is KeyAlgorithm.ED25519 else SignatureScheme(algorithm.default_hash).hash()
    return builder.sign(private_key, hash_algorithm)


def assert_openssl_verifies(certificate: x509.Certificate, directory: Path) -> None:
    """``openssl verify -x509_strict`` accepts the self-signed ``certificate`` as its own trust anchor."""
    pem = directory / f"{certificate.serial_number:x}.pem"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", str(pem), str(pem)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": OK" in result.stdout


def minimal_pdf() -> bytes:
    """A one-page PDF with nothing on it."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    page = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def assert_pyhanko_signs_and_validates(store: KeyStore, key_id: str) -> None:
    """Sign a PDF through ``KeyStoreSigner`` with a self-signed certificate; pyHanko finds it intact, valid, trusted."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from core.keys.pyhanko_signer import KeyStoreSigner

    info = store.info(key_id)
    certificate = self_signed_certificate(store.private_key(key_id), info.algorithm, "PDF 签章测试")
    asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    signer = KeyStoreSigner(store, key_id, asn1_cert)
    writer = IncrementalPdfFileWriter(io.BytesIO(minimal_pdf()))
    output = signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer)
    status = validate_pdf_signature(
        PdfFileReader(output).embedded_signatures[0], ValidationContext(trust_roots=[asn1_cert])
    )
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()


def signatures_per_second(store: KeyStore, key_id: str, seconds: float = 1.0, at_most: int = 5000) -> float:
    """Sign repeatedly for about ``seconds`` (or ``at_most`` signatures) and return the rate."""
    store.sign(key_id, MESSAGE)  # warm up: session, key handle, token
    count = 0
    start = time.perf_counter()
    while count < at_most and time.perf_counter() - start < seconds:
        store.sign(key_id, MESSAGE)
        count += 1
    return count / (time.perf_counter() - start)
