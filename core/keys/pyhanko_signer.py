"""A pyHanko ``Signer`` whose signatures come from a KeyStore.

pyHanko's own ``SimpleSigner`` reloads the private key for every signature and
its PKCS#11 signer opens sessions outside our adapter; this one asks the store,
which keeps keys loaded (or in the token) and pools sessions.
"""

from __future__ import annotations

from collections.abc import Iterable

from asn1crypto import x509 as asn1_x509
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from core.keys.base import KeyStore, SignatureScheme


class KeyStoreSigner(Signer):
    """Sign CMS / PDF signatures with ``key_id`` from ``store``.

    ``signing_cert`` and ``chain`` are asn1crypto certificates (convert
    cryptography certificates by a DER round trip).
    """

    def __init__(
        self,
        store: KeyStore,
        key_id: str,
        signing_cert: asn1_x509.Certificate,
        chain: Iterable[asn1_x509.Certificate] = (),
        *,
        prefer_pss: bool = False,
        embed_roots: bool = True,
    ) -> None:
        registry = SimpleCertificateStore.from_certs(list(chain))
        super().__init__(
            prefer_pss=prefer_pss, embed_roots=embed_roots, signing_cert=signing_cert, cert_registry=registry
        )
        self._store = store
        self._key_id = key_id
        self._info = store.info(key_id)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        family = self._info.algorithm.family
        if dry_run:
            return bytes(self._signature_size())
        if family == "ed25519":
            return self._store.sign(self._key_id, data, SignatureScheme(hash_algorithm=None))
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        padding = None
        if family == "rsa":
            padding = "pss" if mechanism == "rsassa_pss" else "pkcs1v15"
        return self._store.sign(self._key_id, data, SignatureScheme(digest_algorithm.lower(), padding=padding))

    def _signature_size(self) -> int:
        algorithm = self._info.algorithm
        if algorithm.family == "rsa":
            return algorithm.rsa_bits // 8
        if algorithm.family == "ed25519":
            return 64
        # DER ECDSA-Sig-Value: two INTEGERs of up to (curve bytes + 1) plus headers.
        curve_bytes = 48 if algorithm.value == "ec-p384" else 32
        return 2 * (curve_bytes + 3) + 3
