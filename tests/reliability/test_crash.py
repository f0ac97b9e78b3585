"""Crash consistency: SIGKILL ``hengxin serve`` under issuance and revocation load, restart, check everything.

The promise under test (docs/ca.md, "Serial numbers"): a certificate is
returned to a client only after its DER, its status and its audit record are
committed, so a crash can leave a ``reserved`` row but never a certificate the
database does not know.  After the restart the CRL and OCSP must agree with
the database, and the audit chain must verify.
"""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from sqlalchemy import create_engine, text

from tests.fixtures.postgres import PostgresCluster
from tests.reliability.conftest import Instance, IssuanceLoad, normal_serial, ocsp_status, run_cli

THREADS = 4
PER_THREAD = 40
LOAD_SECONDS = 20.0
KILL_AFTER_ISSUED = 25  # certificates received by clients before the SIGKILL


def database_rows(instance: Instance, database_url: str) -> list[tuple[str, str, str, bytes | None]]:
    """(ca name, serial hex, status, der) for every certificate row."""
    url = database_url or f"sqlite:///{instance.data_dir / 'hengxin.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT a.name, c.serial, c.status, c.der FROM ca_certificates c "
                "JOIN ca_authorities a ON a.id = c.ca_id")).all()
    finally:
        engine.dispose()
    return [(r[0], normal_serial(r[1]), r[2], r[3]) for r in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return ""
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.url(cluster.create_database())


@pytest.mark.slow
def test_sigkill_under_load_loses_no_certificate_a_client_received(instance_factory, crash_database_url: str) -> None:
    instance: Instance = instance_factory(database_url=crash_database_url)
    node = instance.nodes[0]
    node.start()

    load = IssuanceLoad([node.url], instance.headers, threads=THREADS, per_thread=PER_THREAD,
                        seconds=LOAD_SECONDS, revoke_every=3, tag="crash")
    load.start()
    deadline = time.monotonic() + LOAD_SECONDS
    while load.issued_count() < KILL_AFTER_ISSUED and time.monotonic() < deadline:
        time.sleep(0.01)
    killed_at = load.issued_count()
    node.kill()
    outcome = load.join()
    assert killed_at >= KILL_AFTER_ISSUED, f"only {killed_at} certificates before the deadline"
    assert not outcome.errors, outcome.errors[:5]
    # The kill really happened mid-load: at least one client lost its connection.
    assert outcome.transport_errors >= 1

    node.start()
    # Clients got each serial at most once.
    duplicates = [s for s, n in Counter(outcome.issued_serials).items() if n > 1]
    assert not duplicates

    rows = database_rows(instance, crash_database_url)
    per_ca = Counter((ca, serial) for ca, serial, _status, _der in rows)
    assert not [key for key, n in per_ca.items() if n > 1], "a serial appears twice for one CA"
    by_serial = {serial: (ca, status, der) for ca, serial, status, der in rows}
    for serial, der in outcome.issued.items():
        assert serial in by_serial, f"certificate {serial} was returned to a client but is not in the database"
        ca, status, stored = by_serial[serial]
        assert ca == "issuing" and stored == der and status in ("issued", "revoked")
    for serial in outcome.revoked:
        assert by_serial[serial][1] == "revoked", f"{serial}: revocation acknowledged but not stored"
    # Reserved rows may exist (reserved, never returned); none of them was returned to a client.
    leftovers = [s for s, (_ca, status, _der) in by_serial.items() if status not in ("issued", "revoked")]
    assert not set(leftovers) & set(outcome.issued)

    # Force a CRL (the killed process may still hold the publisher lease: the CLI must not wait for it forever).
    published = run_cli(instance.configs[0], "ca", "crl", "--ca", "issuing", timeout=90)
    assert published.returncode == 0, published.stderr + published.stdout

    crl = x509.load_der_x509_crl(httpx.get(f"{node.url}/crl/issuing.crl", timeout=20).content)
    issuer = x509.load_der_x509_certificate(httpx.get(f"{node.url}/ca/issuing.crt", timeout=20).content)
    crl.is_signature_valid(issuer.public_key())
    on_crl = {normal_serial(entry.serial_number) for entry in crl}
    revoked_in_db = {s for ca, s, status, _ in rows if ca == "issuing" and status == "revoked"}
    assert on_crl == revoked_in_db
    assert outcome.revoked <= on_crl

    # OCSP answers every certificate of the issuing CA the way the database says.
    checked = 0
    for ca, serial, status, der in rows:
        if ca != "issuing" or der is None:
            continue
        expected = ocsp.OCSPCertStatus.REVOKED if status == "revoked" else ocsp.OCSPCertStatus.GOOD
        assert ocsp_status(node.url, x509.load_der_x509_certificate(der), issuer) == expected, serial
        checked += 1
    assert checked >= len(outcome.issued)

    verified = run_cli(instance.configs[0], "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    node.stop()
    log = node.log.read_text(errors="replace")
    assert instance.token not in log
    print(f"\ncrash[{crash_database_url or 'sqlite'}]: killed after {killed_at} received; clients got "
          f"{len(outcome.issued)} certificates, {len(outcome.revoked)} revocations; database rows {len(rows)} "
          f"(left reserved/failed: {len(leftovers)}); CRL entries {len(on_crl)}; OCSP checked {checked}")
