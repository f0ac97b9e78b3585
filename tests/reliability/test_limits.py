"""Limits on a real ``hengxin serve``: the body size limit holds, and other clients stay served meanwhile."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.conftest import Instance

MAX_BODY = 64 * 1024
PROMPT = 3.0  # seconds: an answer slower than this, while another client misbehaves, is a failure


def timed(client: httpx.Client, method: str, path: str, **options: object) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = client.request(method, path, **options)  # type: ignore[arg-type]
    return time.monotonic() - started, response


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    from tests.reliability.conftest import make_instance

    instance = make_instance(tmp_path_factory.mktemp("limits"), server=f"max_body_bytes = {MAX_BODY}")
    instance.nodes[0].start()
    yield instance
    instance.nodes[0].stop()


@pytest.mark.slow
def test_body_over_the_limit_is_refused_with_413(limited: Instance) -> None:
    node = limited.nodes[0]
    with httpx.Client(base_url=node.url, headers=limited.headers, timeout=20) as client:
        declared = client.post("/api/v1/certificates", content=b"{" + b" " * (MAX_BODY + 10) + b"}",
                               headers={"Content-Type": "application/json"})
        assert declared.status_code == 413
        assert declared.headers["content-type"].startswith("application/problem+json")
        assert declared.json()["code"] == "request.body_too_large"

        def chunks():
            for _ in range(MAX_BODY // 4096 + 4):
                yield b"a" * 4096

        # No Content-Length (chunked): the limit must be counted while reading.
        chunked = client.post("/api/v1/certificates", content=chunks(), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413 and chunked.json()["code"] == "request.body_too_large"
        under = client.post("/api/v1/certificates", json={"profile": "server-tls", "csr": "x" * 1000})
        assert under.status_code == 400


@pytest.mark.slow
def test_slow_body_and_flood_do_not_starve_other_clients(limited: Instance) -> None:
    node = limited.nodes[0]
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def slow_sender() -> None:
        # Declares a large body and trickles it, a byte every 100 ms (slowloris on the body).
        connection = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        sockets.append(connection)
        connection.sendall(b"POST /api/v1/certificates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 60000\r\n\r\n")
        try:
            while not stop.is_set():
                connection.sendall(b" ")
                time.sleep(0.1)
        except OSError:
            pass

    flood_counts: list[int] = []

    def flooder() -> None:
        count = 0
        with httpx.Client(base_url=node.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    client.post("/ocsp", content=b"garbage", headers={"Content-Type": "application/ocsp-request"})
                    count += 1
                except httpx.TransportError:
                    pass
        flood_counts.append(count)

    workers = [threading.Thread(target=slow_sender, daemon=True) for _ in range(4)]
    workers += [threading.Thread(target=flooder, daemon=True) for _ in range(3)]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=node.url, headers=limited.headers, timeout=PROMPT * 3) as client:
            for _ in range(10):
                elapsed, health = timed(client, "GET", "/healthz")
                assert health.status_code == 200
                latencies.append(elapsed)
                elapsed, cas = timed(client, "GET", "/api/v1/cas")
                assert cas.status_code == 200
                latencies.append(elapsed)
                time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
        for connection in sockets:
            connection.close()
    assert max(latencies) < PROMPT, latencies
    assert sum(flood_counts) > 20  # the flood really ran
    print(f"\nlimits: 4 slow bodies + 3 flooders ({sum(flood_counts)} requests); other client's worst latency "
          f"{max(latencies):.3f} s over {len(latencies)} requests")
