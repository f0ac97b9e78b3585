"""The PKCS#11 key store against a real SoftHSM2 token.

Keys for every algorithm are generated once per module on one token; tests
that need a token of their own (wrong PIN, fresh login) take ``softhsm_token``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import algos
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from core.errors import KeyNotFound, KeyStoreUnavailable, UnsupportedAlgorithm, WrongPassphrase
from core.keys.base import KeyAlgorithm, KeyInfo, SignatureScheme
from core.keys.pkcs11 import (
    HSMBusy,
    HSMError,
    HSMModuleFailed,
    HSMPinIncorrect,
    HSMTokenMissing,
    PKCS11KeyStore,
    ecdsa_der_signature,
    signing_request,
    unwrap_point,
)
from tests.fixtures.softhsm import SoftHSM, SoftHSMToken
from tests.keys_helpers import MESSAGE, verify_signature


def open_store(token: SoftHSMToken, pin: str | None = None, **options: object) -> PKCS11KeyStore:
    return PKCS11KeyStore(token.module, token.label, token.pin if pin is None else pin, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def token(softhsm: SoftHSM) -> SoftHSMToken:
    return softhsm.new_token()


@pytest.fixture(scope="module")
def store(token: SoftHSMToken) -> Iterator[PKCS11KeyStore]:
    opened = open_store(token)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def keys(store: PKCS11KeyStore) -> dict[KeyAlgorithm, KeyInfo]:
    return {algorithm: store.generate(f"测试 {algorithm.value}", algorithm) for algorithm in KeyAlgorithm}


# -- pure helpers --------------------------------------------------------------------------


def test_prehashed_rsa_pkcs1_input_is_a_digest_info_that_asn1crypto_parses() -> None:
    digest = hashlib.sha384(b"m").digest()
    mechanism, parameter, payload = signing_request(
        KeyAlgorithm.RSA_3072, digest, SignatureScheme("sha384", prehashed=True)
    )
    assert (mechanism.name, parameter) == ("RSA_PKCS", None)
    parsed = algos.DigestInfo.load(payload)
    assert parsed["digest_algorithm"]["algorithm"].native == "sha384"
    assert parsed["digest"].native == digest


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        (SignatureScheme("sha256"), "SHA256_RSA_PKCS"),
        (SignatureScheme("sha512", padding="pss"), "SHA512_RSA_PKCS_PSS"),
        (SignatureScheme("sha256", prehashed=True, padding="pss"), "RSA_PKCS_PSS"),
    ],
)
def test_rsa_mechanisms_follow_the_scheme(scheme: SignatureScheme, expected: str) -> None:
    data = hashlib.new(str(scheme.hash_algorithm), b"m").digest() if scheme.prehashed else b"m"
    mechanism, parameter, payload = signing_request(KeyAlgorithm.RSA_2048, data, scheme)
    assert mechanism.name == expected
    assert payload == data
    if scheme.padding == "pss":
        assert parameter[2] == scheme.hash().digest_size  # salt as long as the digest


def test_ec_input_is_hashed_on_the_host() -> None:
    mechanism, _parameter, payload = signing_request(KeyAlgorithm.EC_P256, b"m", SignatureScheme("sha256"))
    assert mechanism.name == "ECDSA"
    assert payload == hashlib.sha256(b"m").digest()


def test_prehashed_digest_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(UnsupportedAlgorithm, match="32 bytes"):
        signing_request(KeyAlgorithm.EC_P256, b"short", SignatureScheme("sha256", prehashed=True))


def test_raw_ecdsa_signature_becomes_der_that_cryptography_decodes() -> None:
    r, s = 0x1234, (1 << 255) + 7
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert utils.decode_dss_signature(ecdsa_der_signature(raw)) == (r, s)
    with pytest.raises(HSMError):
        ecdsa_der_signature(b"\x01\x02\x03")


def test_ec_point_is_read_raw_or_der_wrapped() -> None:
    point = b"\x04" + bytes(range(64))
    assert unwrap_point(point, (65, 33)) == point
    assert unwrap_point(b"\x04\x41" + point, (65, 33)) == point
    with pytest.raises(HSMError):
        unwrap_point(b"\x04\x10" + point, (65, 33))


# -- signing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_every_algorithm_signs_verifiably(
    store: PKCS11KeyStore, keys: dict[KeyAlgorithm, KeyInfo], algorithm: KeyAlgorithm
) -> None:
    info = keys[algorithm]
    scheme = SignatureScheme(hash_algorithm=algorithm.default_hash)
    verify_signature(info.public_key(), store.sign(info.key_id, MESSAGE), MESSAGE, scheme)
    assert info.algorithm is algorithm
    assert info.backend == "pkcs11"
    assert info.key_id.startswith(f"{algorithm.family}-") and len(info.key_id.split("-")[-1]) == 16


@pytest.mark.parametrize(
    ("algorithm", "scheme"),
    [
        (KeyAlgorithm.RSA_2048, SignatureScheme("sha256", padding="pss")),
        (KeyAlgorithm.RSA_2048, SignatureScheme("sha384", prehashed=True)),
        (KeyAlgorithm.RSA_3072, SignatureScheme("sha512", prehashed=True, padding="pss")),
        (KeyAlgorithm.EC_P256, SignatureScheme("sha256", prehashed=True)),
        (KeyAlgorithm.EC_P384, SignatureScheme("sha512")),
    ],
)
def test_pss_and_prehashed_schemes_verify(
    store: PKCS11KeyStore, keys: dict[KeyAlgorithm, KeyInfo], algorithm: KeyAlgorithm, scheme: SignatureScheme
) -> None:
    info = keys[algorithm]
    data = hashlib.new(str(scheme.hash_algorithm), MESSAGE).digest() if scheme.prehashed else MESSAGE
    signature = store.sign(info.key_id, data, scheme)
    plain = SignatureScheme(scheme.hash_algorithm, padding=scheme.padding)
    verify_signature(info.public_key(), signature, MESSAGE, plain)


def test_scheme_that_does_not_fit_the_key_is_refused(store: PKCS11KeyStore, keys: dict[KeyAlgorithm, KeyInfo]) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        store.sign(keys[KeyAlgorithm.ED25519].key_id, b"x" * 32, SignatureScheme("sha256", prehashed=True))
    with pytest.raises(UnsupportedAlgorithm):
        store.sign(keys[KeyAlgorithm.EC_P256].key_id, b"x", SignatureScheme("sha256", padding="pss"))


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_private_keys_are_sensitive_and_never_extractable(
    store: PKCS11KeyStore, keys: dict[KeyAlgorithm, KeyInfo], algorithm: KeyAlgorithm
) -> None:
    attributes = store.key_attributes(keys[algorithm].key_id)
    assert attributes["sensitive"] is True
    assert attributes["always_sensitive"] is True
    assert attributes["extractable"] is False
    assert attributes["never_extractable"] is True
    assert attributes["token"] is True and attributes["private"] is True and attributes["sign"] is True
    assert not (attributes["decrypt"] or attributes["unwrap"] or attributes["derive"])


def test_token_storage_shows_every_private_key_sensitive_and_never_extractable(
    softhsm: SoftHSM, token: SoftHSMToken, keys: dict[KeyAlgorithm, KeyInfo]
) -> None:
    # Read from the token's files by softhsm2-dump-file, not through PKCS#11.
    objects = softhsm.private_key_objects(token.label)
    assert len(objects) >= len(keys)
    for attributes in objects:
        assert attributes["CKA_SENSITIVE"] is True
        assert attributes["CKA_ALWAYS_SENSITIVE"] is True
        assert attributes["CKA_EXTRACTABLE"] is False
        assert attributes["CKA_NEVER_EXTRACTABLE"] is True
        assert attributes["CKA_TOKEN"] is True and attributes["CKA_PRIVATE"] is True


def test_adapter_refuses_to_export(store: PKCS11KeyStore, keys: dict[KeyAlgorithm, KeyInfo]) -> None:
    adapter = store.private_key(keys[KeyAlgorithm.EC_P256].key_id)
    assert isinstance(adapter, ec.EllipticCurvePrivateKey)
    with pytest.raises(UnsupportedAlgorithm):
        adapter.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


# -- metadata and persistence ------------------------------------------------------------------


def test_keys_persist_with_label_and_creation_time_for_a_new_store(
    token: SoftHSMToken, keys: dict[KeyAlgorithm, KeyInfo]
) -> None:
    reopened = open_store(token)
    try:
        listed = {info.key_id: info for info in reopened.list_keys()}
        for info in keys.values():
            again = listed[info.key_id]
            assert again.label == info.label
            assert again.algorithm is info.algorithm
            assert again.public_key_der == info.public_key_der
            assert again.created_at == info.created_at
        assert [info.key_id for info in reopened.list_keys()] == sorted(listed)
        ec_key = keys[KeyAlgorithm.EC_P384]
        verify_signature(ec_key.public_key(), reopened.sign(ec_key.key_id, b"d"), b"d", SignatureScheme("sha384"))
    finally:
        reopened.close()


def test_unknown_or_malformed_key_is_not_found(store: PKCS11KeyStore) -> None:
    with pytest.raises(KeyNotFound):
        store.sign("ec-0000000000000000", b"x")
    with pytest.raises(KeyNotFound):
        store.info("../etc/passwd")


# -- sessions ------------------------------------------------------------------------------------


def test_a_hundred_signatures_open_no_new_session(store: PKCS11KeyStore, keys: dict[KeyAlgorithm, KeyInfo]) -> None:
    key_id = keys[KeyAlgorithm.EC_P256].key_id
    store.sign(key_id, b"warm")
    opened = store.sessions_opened
    for number in range(100):
        store.sign(key_id, f"message {number}".encode())
    assert store.sessions_opened == opened
    assert store.sessions_open <= 4


def test_concurrent_signing_stays_within_the_pool(softhsm_token: SoftHSMToken) -> None:
    store = open_store(softhsm_token, pool_size=2)
    try:
        info = store.generate("concurrent", "ec-p256")
        failures: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for number in range(25):
                    data = f"{worker}-{number}".encode()
                    verify_signature(info.public_key(), store.sign(info.key_id, data), data, SignatureScheme())
            except BaseException as e:  # collected and reported below
                failures.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert store.sessions_opened <= 2
    finally:
        store.close()


def test_a_signature_waits_for_a_free_session_then_reports_busy(softhsm_token: SoftHSMToken) -> None:
    store = open_store(softhsm_token, pool_size=1, session_wait_seconds=0.2)
    try:
        info = store.generate("busy", "ec-p256")
        # Hold the only session as a long-running operation would.
        held = store._pool.acquire(lambda generation: pytest.fail("the warm session should be reused"))
        with pytest.raises(HSMBusy) as caught:
            store.sign(info.key_id, b"x")
        assert caught.value.code == "keys.hsm_busy"
        store._pool.release(held)
        store.sign(info.key_id, b"x")
    finally:
        store.close()


def test_a_broken_session_is_replaced_and_the_signature_succeeds(softhsm_token: SoftHSMToken) -> None:
    store = open_store(softhsm_token, pool_size=1)
    try:
        info = store.generate("recover", "ec-p256")
        opened = store.sessions_opened
        store._pool._idle[0].session.close()  # the session dies behind the store's back
        verify_signature(info.public_key(), store.sign(info.key_id, b"x"), b"x", SignatureScheme())
        assert store.sessions_opened == opened + 1
    finally:
        store.close()


def test_a_lost_login_is_restored_and_the_signature_succeeds(softhsm_token: SoftHSMToken) -> None:
    store = open_store(softhsm_token)
    try:
        info = store.generate("relogin", "rsa-2048")
        lost = store._login
        assert lost is not None
        lost.anchor.close()  # C_Logout: every session of the process loses the login
        signature = store.sign(info.key_id, b"x")
        verify_signature(info.public_key(), signature, b"x", SignatureScheme())
        assert store._login is not None and store._login is not lost  # logged in again
    finally:
        store.close()


def test_closing_one_store_leaves_another_on_the_same_token_working(
    token: SoftHSMToken, store: PKCS11KeyStore, keys: dict[KeyAlgorithm, KeyInfo]
) -> None:
    second = open_store(token)
    second.check()
    second.close()
    key_id = keys[KeyAlgorithm.EC_P256].key_id
    opened = store.sessions_opened
    store.sign(key_id, b"still logged in")
    assert store.sessions_opened == opened  # no reset: the shared login survived


# -- failures ------------------------------------------------------------------------------------


def test_wrong_pin_is_reported_with_the_hsm_code_and_without_the_pin(softhsm_token: SoftHSMToken) -> None:
    wrong = "wrong-" + softhsm_token.pin
    store = open_store(softhsm_token, pin=wrong)
    with pytest.raises(HSMPinIncorrect) as caught:
        store.check()
    assert isinstance(caught.value, WrongPassphrase)
    assert caught.value.code == "keys.hsm_pin_incorrect"
    assert softhsm_token.label in caught.value.detail
    assert wrong not in caught.value.detail and softhsm_token.pin not in caught.value.detail
    with pytest.raises(HSMPinIncorrect):
        store.generate("never", "ec-p256")
    # The right PIN still works afterwards.
    good = open_store(softhsm_token)
    good.check()
    good.close()


def test_wrong_pin_is_refused_while_the_process_is_logged_in(token: SoftHSMToken, store: PKCS11KeyStore) -> None:
    store.check()  # the process is logged in to this token
    intruder = open_store(token, pin=token.pin + "0")
    with pytest.raises(HSMPinIncorrect):
        intruder.check()


def test_missing_token_is_unavailable_and_check_raises(softhsm: SoftHSM) -> None:
    store = PKCS11KeyStore(softhsm.module, "no-such-token", "1234")
    with pytest.raises(HSMTokenMissing) as caught:
        store.check()
    assert isinstance(caught.value, KeyStoreUnavailable)
    assert caught.value.code == "keys.hsm_token_missing"
    with pytest.raises(HSMTokenMissing):
        store.sign("ec-0000000000000000", b"x")


def test_missing_or_broken_module_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(HSMModuleFailed) as caught:
        PKCS11KeyStore(tmp_path / "absent.so", "t", "1234").check()
    assert caught.value.code == "keys.hsm_module_failed"
    assert isinstance(caught.value, KeyStoreUnavailable)
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(b"this is not a shared object")
    with pytest.raises(HSMModuleFailed):
        PKCS11KeyStore(garbage, "t", "1234").check()
