"""``hengxin serve`` with several worker processes, each listening on its own SO_REUSEPORT socket.

uvicorn's own supervisor shares one listening socket between its workers.  The worker whose event loop wakes
first accepts every connection waiting at that moment, so a client that opens its keep-alive connections in a
burst (a load balancer, a reverse proxy's pool, a benchmark) often has all of them served by one process:
measured here, 16 connections landed 16/0 in most runs and the other core sat idle (introspection 1,400/s
instead of 3,000/s).  With a socket per worker and ``SO_REUSEPORT`` the kernel spreads new connections over
the workers evenly.

The supervisor holds no keys, no database connection and no socket.  Before starting the workers it checks
that nothing listens on the port (a socket without ``SO_REUSEPORT`` cannot bind beside one with it), so a
second instance started by mistake fails instead of silently taking half the traffic.  It restarts a worker
that dies after it started serving, stops when one dies before (a broken configuration would otherwise
restart forever),
and on SIGTERM or SIGINT stops every worker gracefully.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

from core.config import CONFIG_ENV
from core.errors import ConfigurationError

log = logging.getLogger("hengxin.serve")

# How long a worker may take to finish its requests after SIGTERM before it is killed.
STOP_SECONDS = 15.0


def _address(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    return family, address


def check_port_free(host: str, port: int) -> None:
    """Raise ConfigurationError when something already listens on ``host:port``."""
    family, address = _address(host, port)
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
        probe.bind(address)
    except OSError as e:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {e.strerror} (is another server running?)") from e
    finally:
        probe.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    family, address = _address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _worker(config_path: str, host: str, port: int, options: dict[str, Any], ready: Any) -> None:
    """One worker process: its own socket, its own application and platform (api/asgi.py)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                ready.set()  # the application started and the socket is served

    if config_path:
        os.environ[CONFIG_ENV] = config_path
    sock = _listening_socket(host, port)
    Server(uvicorn.Config("api.asgi:worker_app", factory=True, **options)).run(sockets=[sock])


class Supervisor:
    """Starts ``workers`` worker processes and keeps them running until told to stop."""

    def __init__(self, config_path: str, host: str, port: int, workers: int, options: dict[str, Any]) -> None:
        self.arguments = (config_path, host, port, options)
        self.workers = workers
        self.stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, tuple[BaseProcess, Any]] = {}

    def _start(self, slot: int) -> None:
        ready = self._context.Event()
        process = self._context.Process(target=_worker, args=(*self.arguments, ready), name=f"hengxin-worker-{slot}")
        process.start()
        self._processes[slot] = (process, ready)

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (exit status 0), or until a worker fails to start (1)."""
        _, host, port, _ = self.arguments
        check_port_free(host, port)
        previous = {number: signal.signal(number, self._on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            for slot in range(self.workers):
                self._start(slot)
            while not self.stopping.wait(0.5):
                for slot, (process, ready) in list(self._processes.items()):
                    if process.is_alive():
                        continue
                    if not ready.is_set():
                        log.error("a worker failed to start; stopping", extra={"exit_code": process.exitcode})
                        status = 1
                        self.stopping.set()
                        break
                    log.warning("a worker died; starting another", extra={"exit_code": process.exitcode})
                    self._start(slot)
        finally:
            self._stop_all()
            for number, handler in previous.items():
                signal.signal(number, handler)
        return status

    def _on_signal(self, number: int, _frame: Any) -> None:
        self.stopping.set()

    def _stop_all(self) -> None:
        processes = [process for process, _ in self._processes.values()]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("a worker did not stop in time; killing it", extra={"pid": process.pid})
                process.kill()
                process.join(5)

