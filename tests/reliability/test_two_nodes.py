"""Two ``hengxin serve`` processes on one PostgreSQL database under concurrent issuance, revocation and CRLs.

Checks the multi-node promises of docs/ca.md: serials unique per issuer
(database constraint plus what clients saw), CRL numbers strictly increasing
with never-older content, and one unbroken audit chain written by both nodes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest
from cryptography import x509
from sqlalchemy import create_engine, text

from tests.fixtures.postgres import PostgresCluster
from tests.reliability.conftest import Instance, IssuanceLoad, normal_serial, run_cli

LOAD_SECONDS = 15.0
CRL_REQUESTS_PER_NODE = 12


@pytest.mark.slow
def test_two_nodes_issue_revoke_and_publish_crls_without_conflicts(instance_factory,
                                                                   postgres_cluster: PostgresCluster) -> None:
    database_url = postgres_cluster.url(postgres_cluster.create_database())
    # Keep every CRL so the whole sequence can be checked; let the background publishers run often too.
    instance: Instance = instance_factory(nodes=2, database_url=database_url,
                                          ca="crl_keep = 1000\ncrl_min_interval_seconds = 0\n"
                                             "crl_check_interval_seconds = 0.5")
    for node in instance.nodes:
        node.start()
    urls = [node.url for node in instance.nodes]

    load = IssuanceLoad(urls, instance.headers, threads=4, per_thread=15, seconds=LOAD_SECONDS, revoke_every=2,
                        tag="two")
    crl_numbers: list[int] = []
    crl_errors: list[str] = []
    lock = threading.Lock()

    def publish(url: str) -> None:
        with httpx.Client(base_url=url, headers=instance.headers, timeout=40) as client:
            for _ in range(CRL_REQUESTS_PER_NODE):
                response = client.post("/api/v1/cas/issuing/crl")
                with lock:
                    if response.status_code == 200:
                        crl_numbers.append(response.json()["crl_number"])
                    elif not (response.status_code == 503 and response.json()["code"] == "ca.crl_busy"):
                        crl_errors.append(f"{response.status_code} {response.text[:300]}")
                time.sleep(0.2)

    publishers = [threading.Thread(target=publish, args=(url,), daemon=True) for url in urls]
    load.start()
    for thread in publishers:
        thread.start()
    outcome = load.join()
    for thread in publishers:
        thread.join(60)
        assert not thread.is_alive()

    assert not outcome.errors, outcome.errors[:5]
    assert outcome.transport_errors == 0
    assert not crl_errors, crl_errors[:5]
    assert len(outcome.issued) >= 20 and outcome.revoked
    assert not [s for s, n in Counter(outcome.issued_serials).items() if n > 1]
    # Every publish that answered got its own number.
    assert len(crl_numbers) == len(set(crl_numbers)) and len(crl_numbers) >= CRL_REQUESTS_PER_NODE

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            duplicate_serials = connection.execute(text(
                "SELECT ca_id, serial FROM ca_certificates GROUP BY ca_id, serial HAVING count(*) > 1")).all()
            crls = connection.execute(text(
                "SELECT r.crl_number, r.this_update, r.der FROM ca_crls r JOIN ca_authorities a ON a.id = r.ca_id "
                "WHERE a.name = 'issuing' ORDER BY r.id")).all()
            revoked = {normal_serial(r[0]) for r in connection.execute(text(
                "SELECT c.serial FROM ca_certificates c JOIN ca_authorities a ON a.id = c.ca_id "
                "WHERE a.name = 'issuing' AND c.status = 'revoked'")).all()}
    finally:
        engine.dispose()
    assert not duplicate_serials
    numbers = [row[0] for row in crls]
    assert len(numbers) == len(set(numbers)), "a CRL number was used twice"
    assert set(crl_numbers) <= set(numbers)
    # Rows may commit out of number order when two nodes publish at once; readers always take the
    # highest number, so what must hold is that a higher number never carries older content.
    ordering_problems: list[str] = []
    previous: set[str] = set()
    previous_update = None
    for number, this_update, der in sorted(crls, key=lambda row: row[0]):
        entries = {normal_serial(entry.serial_number) for entry in x509.load_der_x509_crl(der)}
        if not previous <= entries:
            ordering_problems.append(f"CRL {number} lacks revocations an earlier number carries")
        if previous_update is not None and this_update < previous_update:
            ordering_problems.append(f"CRL {number} has an older thisUpdate than its predecessor")
        previous, previous_update = entries, this_update
    assert outcome.revoked <= revoked

    # A final CRL from either node carries every revocation.
    final = httpx.post(f"{urls[1]}/api/v1/cas/issuing/crl", headers=instance.headers, timeout=40)
    assert final.status_code == 200 and final.json()["crl_number"] > max(numbers)
    served = x509.load_der_x509_crl(httpx.get(f"{urls[0]}/crl/issuing.crl", timeout=20).content)
    assert {normal_serial(entry.serial_number) for entry in served} == revoked

    verified = run_cli(instance.configs[0], "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for node in instance.nodes:
        node.stop()
        assert "Traceback" not in node.log.read_text(errors="replace")
    assert ordering_problems == []
    print(f"\ntwo nodes: {len(outcome.issued)} certificates, {len(outcome.revoked)} revocations, "
          f"{len(crl_numbers)} CRLs on request, {len(numbers)} CRL rows (numbers {numbers[0]}..{numbers[-1]})")
