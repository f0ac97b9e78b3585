"""Password login at the configured argon2id cost, and RFC 7662 token introspection.

Ours: ``POST /api/v1/auth/login`` (JSON login + password) of a two-worker ``hengxin serve`` on SQLite, driven
by wrk over a few hundred users created through the API; then ``POST /oauth/introspect`` of users' access
tokens, authenticated as an application (a service account holding the ``application`` role, bearer JWT from
the client-credentials grant), as a relying party would call it.

Peers, on the same two cores in the same run:

- raw argon2-cffi ``PasswordHasher.verify`` at the same parameters (read from the instance's configuration),
  in two processes for a fixed time, just before and just after the login runs (their mean is the peer
  figure, so load that changes during the run affects both sides alike): the ceiling a login reaches when
  everything but the hash is free;
- OpenLDAP slapd (python-ldap's ``slapdtest``, the test suite's ``HengxinSlapd`` with the argon2 module)
  holding the same users with ``{ARGON2}`` passwords at the same parameters, simple binds from two client
  processes (python-ldap, one connection each, rebinding);
- Keycloak's published sizing figure (15 password logins/s per vCPU, so 30/s on two): a reference only, not
  measured here.

Run from the repository root: ``.venv/bin/python bench/bench_login.py [--quick] [--seconds N] [--no-save]``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import httpx  # noqa: E402

SCENARIO = "login"
KEYCLOAK_URL = "https://www.keycloak.org/high-availability/concepts-memory-and-cpu-sizing"
KEYCLOAK_PER_VCPU = 15
LOGIN_TARGET = 0.9
INTROSPECTION_TARGET = 3000.0
SUFFIX = "dc=gov,dc=example"
CORES = 2

Parameters = tuple[int, int, int]  # argon2id time cost, memory KiB, parallelism


def _login(index: int) -> str:
    return f"bench{index:04d}"


def _password(index: int) -> str:
    # Four character classes, 18 characters, does not contain the login: the default policy accepts it.
    return f"Pw-{index:04d}-Zq8x!long"


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _hasher(parameters: Parameters) -> Any:
    import argon2

    time_cost, memory_kib, parallelism = parameters
    return argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
                                 hash_len=32, salt_len=16, type=argon2.Type.ID)


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _parallel(target: Any, arguments: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Run ``target(*args, queue)`` in one process per entry of ``arguments``; gather what each puts."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=target, args=(*args, queue)) for args in arguments]
    for process in processes:
        process.start()
    try:
        results = [queue.get(timeout=600) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    return results


# -- raw argon2-cffi ---------------------------------------------------------------------------------------


def _argon2_hash(arguments: tuple[Parameters, str]) -> str:
    parameters, password = arguments
    return str(_hasher(parameters).hash(password))


def _argon2_worker(parameters: Parameters, hashes: list[tuple[str, str]], seconds: float, start_at: float,
                   queue: Any) -> None:
    hasher = _hasher(parameters)
    while time.time() < start_at:
        time.sleep(0.001)
    count, index = 0, 0
    cpu = _process_cpu()
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        stored, password = hashes[index % len(hashes)]
        hasher.verify(stored, password)  # raises on a mismatch, which ends the run
        count += 1
        index += 1
    queue.put({"count": count, "seconds": time.monotonic() - started, "cpu_seconds": _process_cpu() - cpu})


def raw_argon2(parameters: Parameters, hashes: list[tuple[str, str]], seconds: float) -> dict[str, Any]:
    """argon2-cffi verifications/s in one process per core for ``seconds``."""
    start_at = time.time() + 1.0  # every process imported and ready before the clock starts
    results = _parallel(_argon2_worker, [(parameters, hashes, seconds, start_at) for _ in range(CORES)])
    count = sum(r["count"] for r in results)
    return {
        "processes": CORES,
        "verifications": count,
        "seconds": round(max(r["seconds"] for r in results), 2),
        "rate": round(sum(r["count"] / r["seconds"] for r in results), 1),
        "cpu_ms_per_verification": round(1000 * sum(r["cpu_seconds"] for r in results) / count, 2) if count else None,
    }


# -- slapd ---------------------------------------------------------------------------------------------------


def _bind_worker(uri: str, users: list[tuple[str, str]], offset: int, connections: int, seconds: float,
                 start_at: float, queue: Any) -> None:
    """``connections`` threads, each with its own connection rebinding in a loop (python-ldap releases the GIL
    while it waits for slapd, and LDAP serialises binds on one connection)."""
    import threading

    import ldap

    results: list[tuple[int, int, list[float], float]] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        connection = ldap.initialize(uri)
        connection.protocol_version = 3
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, 10)
        count, failures, index = 0, 0, offset + thread * len(users) // max(1, connections)
        latencies: list[float] = []
        while time.time() < start_at:
            time.sleep(0.001)
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            dn, password = users[index % len(users)]
            t = time.perf_counter()
            try:
                connection.simple_bind_s(dn, password)
            except ldap.LDAPError:
                failures += 1
            latencies.append((time.perf_counter() - t) * 1000)
            count += 1
            index += 1
        elapsed = time.monotonic() - started
        connection.unbind_s()
        with lock:
            results.append((count, failures, latencies, elapsed))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put({
        "count": sum(r[0] for r in results),
        "failures": sum(r[1] for r in results),
        "latencies": [x for r in results for x in r[2]],
        "seconds": max(r[3] for r in results),
    })


def slapd_binds(work: Path, users: list[tuple[str, str, str]], seconds: float, in_flight: int) -> dict[str, Any]:
    """Start slapd with the argon2 module, add ``users`` (login, password, PHC hash), and measure simple binds/s
    from two client processes keeping ``in_flight`` binds outstanding between them."""
    os.environ.setdefault("LDAPNOINIT", "1")
    if not Path("/usr/sbin/slapd").exists():
        raise SystemExit("slapd is missing: install the Debian packages slapd and ldap-utils (make bench does)")
    from tests.fixtures.slapd import HengxinSlapd

    if HengxinSlapd is None:
        raise SystemExit("python-ldap (slapdtest) is missing: pip install -e '.[test]'")
    run_directory = work / "slapd"
    run_directory.mkdir()
    server = HengxinSlapd(run_directory, suffix=SUFFIX, modules=("argon2",))
    try:
        server.start()
        server.add_suffix_entry()
        entries = [f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n"]
        for login, _, phc in users:
            entries.append(
                f"dn: uid={login},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {login}\ncn: {login}\n"
                f"sn: {login}\nuserPassword: {{ARGON2}}{phc}\n"
            )
        server.add_ldif("\n".join(entries))
        credentials = [(f"uid={login},ou=people,{SUFFIX}", password) for login, password, _ in users]
        pid = server._proc.pid
        start_at = time.time() + 1.0
        before = harness.cpu_seconds([pid])
        per_process = max(1, in_flight // CORES)
        results = _parallel(_bind_worker, [(server.ldap_uri, credentials, i * len(credentials) // CORES, per_process,
                                            seconds, start_at) for i in range(CORES)])
        server_cpu = harness.cpu_seconds([pid]) - before
        rss = harness.rss_mib(pid)
    finally:
        server.stop()
    failures = sum(r["failures"] for r in results)
    if failures:
        raise SystemExit(f"slapd: {failures} binds failed; the figures would be meaningless")
    latencies = [x for r in results for x in r["latencies"]]
    count = sum(r["count"] for r in results)
    elapsed = max(r["seconds"] for r in results)
    return {
        "client": (f"python-ldap simple_bind_s, {CORES} processes x {per_process} threads, one connection each "
                   "(rebinding)"),
        "processes": CORES,
        "in_flight": CORES * per_process,
        "binds": count,
        "seconds": round(elapsed, 2),
        "rate": round(sum(r["count"] / r["seconds"] for r in results), 1),
        "p50_ms": harness.percentile(latencies, 0.5),
        "p99_ms": harness.percentile(latencies, 0.99),
        "server_cpu_percent": round(100 * server_cpu / elapsed, 1) if elapsed else None,
        "cpu_ms_per_bind": round(1000 * server_cpu / count, 2) if count else None,
        "slapd_rss_mib": rss,
    }


# -- Hengxin -------------------------------------------------------------------------------------------------


def _check(response: Any, what: str) -> Any:
    if response.status_code >= 300:
        raise SystemExit(f"{what}: {response.status_code} {response.text[:500]}")
    return response.json() if response.content else None


def create_users(client: Any, count: int) -> None:
    """Users with passwords through the API, from two threads (the server has two workers)."""

    def create(index: int) -> None:
        body = {"login": _login(index), "display_name": f"压测用户 {index}", "password": _password(index)}
        _check(client.post("/api/v1/users", json=body), f"create user {index}")

    with ThreadPoolExecutor(max_workers=CORES) as pool:
        list(pool.map(create, range(count)))


def application_token(client: Any, public: Any) -> str:
    """A service account with the ``application`` role, a client secret, and its client-credentials JWT."""
    _check(client.post("/api/v1/users", json={"login": "bench-app", "display_name": "压测应用", "kind": "service"}),
           "create the service account")
    _check(client.post("/api/v1/users/bench-app/roles", json={"role": "application"}), "grant application")
    secret = _check(client.post("/api/v1/auth/clients/bench-app/secret"), "client secret")["client_secret"]
    token = _check(public.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("bench-app", secret)),
                   "client credentials")
    return str(token["access_token"])


def login_requests(count: int) -> list[harness.Request]:
    return [
        harness.Request("POST", "/api/v1/auth/login",
                        json.dumps({"login": _login(i), "password": _password(i)}).encode(),
                        {"Content-Type": "application/json"})
        for i in range(count)
    ]


def introspection_requests(public: Any, application: str, count: int) -> list[harness.Request]:
    """Logins of ``count`` users; one introspection request per access token, each checked active first."""
    requests = []
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Bearer {application}"}
    for i in range(count):
        tokens = _check(public.post("/api/v1/auth/login", json={"login": _login(i), "password": _password(i)}),
                        f"login {i}")
        body = urllib.parse.urlencode({"token": tokens["access_token"]}).encode()
        answer = _check(public.post("/oauth/introspect", content=body, headers=headers), "introspect")
        if answer.get("active") is not True or answer.get("sub") != _login(i):
            raise SystemExit(f"introspection of a fresh token says {answer}")
        requests.append(harness.Request("POST", "/oauth/introspect", body, headers))
    return requests


def wait_idle(instance: harness.Hengxin, timeout: float = 60) -> float:
    """Wait until the server's processes use under 5 % of a core over half a second (start-up jobs done:
    CRLs, OCSP responders, keys unsealed); returns the seconds waited."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < timeout and quiet < 2:
        pids = instance.pids
        before = harness.cpu_seconds(pids)
        time.sleep(0.5)
        quiet = quiet + 1 if harness.cpu_seconds(pids) - before < 0.025 else 0
    return round(time.monotonic() - started, 1)


def _workers(instance: harness.Hengxin) -> list[int]:
    """The uvicorn worker processes (not the supervisor, not multiprocessing's resource tracker)."""
    found = []
    for pid in instance.pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            found.append(pid)
    return found


def warm_up(instance: harness.Hengxin, requests: list[harness.Request], connections: int, what: str,
            work: Path) -> None:
    """Unrecorded load until every worker has served some: a worker's first requests of a route build FastAPI's
    validators and load keys, which costs more CPU than many requests; then wait for the server to be idle."""
    workers = _workers(instance)
    used = dict.fromkeys(workers, 0.0)
    for _ in range(6):
        before = {pid: harness.cpu_seconds([pid]) for pid in workers}
        warm = harness.wrk(instance.url, requests, connections=connections, seconds=1, work=work)
        harness.check_clean(warm, f"{what} warm-up")
        for pid in workers:
            used[pid] += harness.cpu_seconds([pid]) - before[pid]
        if all(value >= 0.2 for value in used.values()):
            break
    waited = wait_idle(instance)
    _say(f"{what}: warmed up ({', '.join(f'{v:.1f}' for v in used.values())} s CPU per worker); "
         f"idle after {waited} s")


def run_load(instance: harness.Hengxin, requests: list[harness.Request], connections: list[int], seconds: float,
             what: str, work: Path) -> list[dict[str, Any]]:
    warm_up(instance, requests, max(connections), what, work)
    runs = []
    for c in connections:
        pids = instance.pids
        result = harness.wrk(instance.url, requests, connections=c, seconds=seconds, server_pids=pids, work=work)
        harness.check_clean(result, f"{what} c={c}")
        if pids != instance.pids:
            raise SystemExit(f"{what} c={c}: a server worker was replaced during the run; the figures would be "
                             "meaningless")
        run = result.as_dict()
        run["server_rss_mib"] = round(sum(harness.rss_mib(p) for p in pids), 1)
        if result.server_cpu_seconds is not None and result.requests:
            run["server_cpu_ms_per_request"] = round(1000 * result.server_cpu_seconds / result.requests, 2)
        runs.append(run)
        _say(f"{what} c={c}: {result.rate}/s p50 {result.p50_ms} ms p99 {result.p99_ms} ms, "
             f"server CPU {run.get('server_cpu_ms_per_request')} ms/request, wrk CPU {result.generator_cpu_percent} %")
    return runs


def main() -> None:
    args = harness.arguments(__doc__.split("\n", 1)[0])
    quick = args.quick
    seconds = args.seconds or (2.0 if quick else 15.0)
    user_count = 16 if quick else 300
    login_connections = [8] if quick else [4, 8, 16]
    introspection_connections = [16] if quick else [8, 16, 32]
    introspected = 8 if quick else 50

    from core.config import load_settings

    started = time.monotonic()
    with harness.workspace(SCENARIO) as work:
        home = work / "hengxin"
        home.mkdir()
        _say("hengxin init")
        instance = harness.hengxin_instance(home, workers=2)
        settings = load_settings(instance.config)
        parameters: Parameters = (settings.passwords.argon2_time_cost, settings.passwords.argon2_memory_kib,
                                  settings.passwords.argon2_parallelism)
        lockout = {
            "lockout_threshold": settings.passwords.lockout_threshold,
            "source_threshold": settings.passwords.source_threshold,
            "rate_limit_per_minute": settings.server.rate_limit_per_minute,
        }
        with ProcessPoolExecutor(max_workers=CORES, mp_context=multiprocessing.get_context("spawn")) as pool:
            phcs = list(pool.map(_argon2_hash, [(parameters, _password(i)) for i in range(user_count)]))
        hashes = [(phcs[i], _password(i)) for i in range(user_count)]
        try:
            _say("hengxin serve")
            instance.start()
            with instance.client() as client, httpx.Client(base_url=instance.url, timeout=60) as public:
                _say(f"creating {user_count} users")
                create_users(client, user_count)
                # The raw hash rate just before and just after our login runs, with our server idle.
                _say("argon2-cffi (before)")
                argon2_runs = [raw_argon2(parameters, hashes, seconds)]
                login_runs = run_load(instance, login_requests(user_count), login_connections, seconds, "login",
                                      work)
                _say("argon2-cffi (after)")
                argon2_runs.append(raw_argon2(parameters, hashes, seconds))
                application = application_token(client, public)
                introspection_runs = run_load(
                    instance, introspection_requests(public, application, introspected), introspection_connections,
                    seconds, "introspect", work)
        finally:
            instance.stop()
        in_flight = max(login_runs, key=lambda r: r["rate"])["connections"]
        _say(f"slapd, {in_flight} binds in flight")
        slapd_result = slapd_binds(work, [(_login(i), _password(i), phcs[i]) for i in range(user_count)], seconds,
                                   in_flight)
        _say(f"slapd: {slapd_result['rate']}/s")

    argon2_rate = round(sum(r["rate"] for r in argon2_runs) / len(argon2_runs), 1)
    argon2_cpu = round(sum(r["cpu_ms_per_verification"] for r in argon2_runs) / len(argon2_runs), 2)
    best_login = max(login_runs, key=lambda r: r["rate"])
    best_introspection = max(introspection_runs, key=lambda r: r["rate"])
    login_ratio = best_login["rate"] / argon2_rate if argon2_rate else 0.0
    login_cpu = best_login.get("server_cpu_ms_per_request")
    cpu_ratio = round(argon2_cpu / login_cpu, 2) if login_cpu else None
    keycloak = KEYCLOAK_PER_VCPU * CORES
    t, m, p = parameters
    cost = f"argon2id t={t}, m={m} KiB, p={p}"
    measure = f"password login ({cost}), c={best_login['connections']}"
    generator = best_login["generator_cpu_percent"]
    rows = [
        harness.row(measure, best_login["rate"], "logins/s",
                    peer="argon2-cffi verify, 2 processes (mean of before and after)", peer_value=argon2_rate,
                    target=f">= {LOGIN_TARGET:.0%} of raw argon2-cffi", met=login_ratio >= LOGIN_TARGET,
                    generator_cpu_percent=generator,
                    note=(f"{login_ratio:.0%} of the raw hash rate; CPU per login {login_cpu} ms vs {argon2_cpu} ms "
                          f"per raw verification (CPU ratio {cpu_ratio}); p99 {best_login['p99_ms']} ms")),
        harness.row(measure, best_login["rate"], "logins/s",
                    peer=f"slapd {{ARGON2}} simple binds, {slapd_result['in_flight']} in flight from 2 processes",
                    peer_value=slapd_result["rate"],
                    generator_cpu_percent=generator,
                    note=(f"slapd p99 {slapd_result['p99_ms']} ms, {slapd_result['cpu_ms_per_bind']} ms CPU per bind; "
                          "a bind checks the password only (no session, token or audit record)")),
        harness.row(measure, best_login["rate"], "logins/s",
                    peer="Keycloak published sizing (15 logins/s per vCPU x 2), not measured", peer_value=keycloak,
                    generator_cpu_percent=generator,
                    note="published figure at Keycloak's own hashing cost; a reference, not a measurement"),
        harness.row(f"token introspection (RFC 7662), c={best_introspection['connections']}",
                    best_introspection["rate"], "introspections/s",
                    target=f">= {INTROSPECTION_TARGET:,.0f}/s", met=best_introspection["rate"] >= INTROSPECTION_TARGET,
                    generator_cpu_percent=best_introspection["generator_cpu_percent"],
                    note=(f"p99 {best_introspection['p99_ms']} ms, server CPU "
                          f"{best_introspection.get('server_cpu_ms_per_request')} ms per request; the client is a "
                          "service account's bearer JWT")),
    ]
    method = (
        f"hengxin serve with 2 workers on SQLite (fsync on, default scrypt cost), {user_count} users created through "
        f"the API with passwords hashed at the configured {cost}. Logins: wrk (1 thread) POSTing "
        f"/api/v1/auth/login with JSON login+password, cycling over the users, c={login_connections}, {seconds:g} s "
        "each; every answer must be 200 (session, refresh token and audit records committed before it). All "
        f"passwords are right, so neither the per-account lockout ({lockout['lockout_threshold']} failures) nor the "
        f"per-source block ({lockout['source_threshold']} failures), which count failures only, can refuse the "
        "load; the harness turns the per-client request rate limit off (one load generator is one address). "
        "Each worker computes at most cores/workers password hashes at once (here 1; the others queue). "
        f"Peers on the same 2 cores: argon2-cffi PasswordHasher.verify at the same parameters in 2 processes for "
        f"{seconds:g} s just before and just after the login runs (mean taken; our server idle meanwhile); "
        f"OpenLDAP slapd (slapdtest, argon2 module) holding the same users with {{ARGON2}} hashes at the same "
        f"parameters, simple binds from 2 python-ldap processes (threads, one connection each) keeping as many binds "
        f"in flight as our best login run had connections, for {seconds:g} s after our server stopped; "
        f"Keycloak's published sizing guide ({KEYCLOAK_URL}), quoted, not measured. CPU per operation (server "
        "worker CPU time / requests; slapd's CPU / binds) is recorded too: it is less sensitive to other load on "
        "the machine than the rates. Introspection: a service account with the application role takes a "
        f"client-credentials JWT; wrk POSTs /oauth/introspect with token=<access token of one of {introspected} "
        f"logged-in users> and that JWT as bearer, c={introspection_connections}, {seconds:g} s each; every token "
        "is checked active beforehand."
    )
    _say(f"done in {time.monotonic() - started:.0f} s")
    harness.save(SCENARIO, {
        "method": method,
        "rows": rows,
        "argon2_parameters": {"time_cost": t, "memory_kib": m, "parallelism": p},
        "lockout_settings": lockout,
        "login_runs": login_runs,
        "introspection_runs": introspection_runs,
        "argon2_cffi_runs": argon2_runs,
        "login_cpu_ratio": cpu_ratio,
        "slapd": slapd_result,
        "keycloak_reference": {"logins_per_second_per_vcpu": KEYCLOAK_PER_VCPU, "vcpus": CORES, "value": keycloak,
                               "source": KEYCLOAK_URL, "measured": False},
    }, quick=quick, no_save=args.no_save)


if __name__ == "__main__":
    main()
