"""Backup of 1 GiB (first run, unchanged re-run) and a restore drill, beside restic run directly.

    .venv/bin/python bench/bench_backup.py [--quick] [--no-save]

The data set is generated once per run (1 GiB, or 64 MiB with ``--quick``): four large ``os.urandom`` files
and many small random and text files in nested directories, so nothing deduplicates or compresses trivially.

* **Hengxin**: an initialised instance whose operator added the data directory to ``[backup] extra_paths``,
  with one job per round, each on a fresh local repository with the default retention.  A backup is started
  as the API (and the built-in scheduler) starts it, on the running ``hengxin serve``
  (``POST /api/v1/backups/<job>/run``), and timed from the request to the run record's ``finished_at``.
  Everything the job does counts: the database copy, the audit export and checkpoint, the key inventory, the
  manifest (a SHA-256 of every new or changed file), ``restic backup``, retention and the run record with its
  audit record; the record's ``step_seconds`` say which took what.  ``hengxin backup run`` (what a systemd
  timer runs) is timed once too, the CLI's start-up included.
* **restic directly**: ``restic backup`` of the same directory into fresh repositories of its own (``restic
  init`` by the same restic: same repository version, compression and key derivation; a random password in a
  password file, as Hengxin does).  The like-for-like rows add ``restic forget --prune`` with the job's policy.
* Rounds of (first, unchanged) on both sides, who goes first alternating (the side that goes first was
  measurably slower on this machine); medians are reported, every round is kept in the JSON.
* **Restore drill**: ``POST /api/v1/drills`` with the default ``[dr]`` settings (``restic check --read-data``,
  restore into a sandbox, every file checked against the manifest, database and audit chain verified, a
  sandbox ``hengxin serve`` probed over HTTP, then torn down and a signed PDF report written).  The drill's
  own RTO (start to last probe passed) is the figure; the whole drill's wall-clock is in the note.  The peer is
  ``restic restore`` of the same snapshot into an empty directory (and ``restic check --read-data`` beside it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness

SCENARIO = "backup"
JOB = "nightly"
WORDS = (
    "证书 签名 时间戳 审计 备份 恢复 certificate signature timestamp audit backup restore revocation "
    "authority directory policy manifest snapshot repository recovery objective platform operator "
    "的 了 和 是 在 有 中 为 对 以 数据 系统 安全 管理 服务 密钥 用户 部门"
).split()


# -- the data set -------------------------------------------------------------------------------------------


def generate(directory: Path, total: int, seed: int) -> dict[str, Any]:
    """Write ``total`` bytes: 60 % in four large random files, 40 % in many small random or text files.

    Random content neither deduplicates nor compresses; the text files (a quarter of the small ones) compress
    as real logs and exports do.  Returns the counts for the record.
    """
    rng = random.Random(seed)
    directory.mkdir(parents=True)
    large = int(total * 0.6) // 4
    written = files = text_files = 0
    for number in range(4):
        with (directory / f"archive-{number}.bin").open("wb") as handle:
            remaining = large
            while remaining:
                piece = min(remaining, 8 << 20)
                handle.write(os.urandom(piece))
                remaining -= piece
        written += large
        files += 1
    folder = 0
    while written < total:
        if (files - 4) % 200 == 0:
            folder += 1
            (directory / f"d{folder:03d}" / f"sub{folder % 7}").mkdir(parents=True)
        size = min(total - written, int(2 ** rng.uniform(10, 18)))  # 1 KiB .. 256 KiB, log-uniform
        path = directory / f"d{folder:03d}" / f"sub{folder % 7}" / f"f{files:06d}"
        if rng.random() < 0.25:
            text = []
            length = 0
            while length < size:
                line = " ".join(rng.choice(WORDS) for _ in range(12)) + f" {rng.getrandbits(64):016x}\n"
                text.append(line)
                length += len(line.encode())
            data = "".join(text).encode()[:size]
            path.with_suffix(".txt").write_bytes(data)
            text_files += 1
        else:
            path.with_suffix(".bin").write_bytes(os.urandom(size))
        written += size
        files += 1
    return {"bytes": written, "files": files, "large_files": 4, "text_files": text_files}


# -- restic directly ----------------------------------------------------------------------------------------


class ResticPeer:
    """restic run by hand on its own repository, with a password file and a cache of its own."""

    def __init__(self, directory: Path, binary: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        password = directory / "password"
        password.write_text(secrets.token_urlsafe(32) + "\n")
        password.chmod(0o600)
        self.binary = binary
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(directory),
            "LANG": "C",
            "RESTIC_REPOSITORY": str(directory / "repository"),
            "RESTIC_PASSWORD_FILE": str(password),
            "RESTIC_CACHE_DIR": str(directory / "cache"),
        }

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[float, float, str]:
        """Run restic; returns its wall-clock seconds, its CPU seconds and its stdout."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run([self.binary, *args], capture_output=True, text=True, env=env or self.env,
                                timeout=1800)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise SystemExit(f"restic {' '.join(args)} failed: {result.stderr[-2000:]}")
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return seconds, cpu, result.stdout

    def backup(self, path: Path) -> tuple[float, float, dict[str, Any]]:
        seconds, cpu, out = self.run("backup", "--json", "--tag=bench", "--", str(path))
        summary = next(json.loads(line) for line in out.splitlines() if '"message_type":"summary"' in line)
        return seconds, cpu, summary


# -- Hengxin ------------------------------------------------------------------------------------------------


def configure(data: Path, repositories: Path, rounds: int) -> str:
    """One job per round, each on a fresh repository of its own, so that every round has a real first run."""
    text = f'[backup]\nextra_paths = ["{data}"]\n'
    for number in range(1, rounds + 1):
        text += f"""
[[backup.repositories]]
name = "local-{number}"
url = "{repositories / f"hengxin-{number}"}"
password_secret = "repo-local-{number}"

[[backup.jobs]]
name = "{JOB}-{number}"
repository = "local-{number}"
"""
    return text


def serve_cpu_seconds(instance: harness.Hengxin) -> float:
    """CPU time of the serve processes, including the restic children they have waited for."""
    total = 0
    for pid in instance.pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / harness.CLOCK_TICKS


def api_backup(instance: harness.Hengxin, client: Any, job: str) -> tuple[float, float, dict[str, Any]]:
    """Start the job over the API and wait for its run record; returns wall-clock, CPU seconds and the record.

    The wall-clock runs from the request to the run's ``finished_at`` (the server's clock, this machine's), so
    the polling interval neither adds to it nor, polled slowly, loads the server.
    """
    before = client.get("/api/v1/backups", params={"job": job, "limit": 1}).json()["items"]
    last_id = before[0]["id"] if before else 0
    cpu = serve_cpu_seconds(instance)
    start = time.time()
    response = client.post(f"/api/v1/backups/{job}/run")
    if response.status_code != 202:
        raise SystemExit(f"POST /api/v1/backups/{job}/run: {response.status_code} {response.text[:500]}")
    while True:
        time.sleep(0.5)
        items = client.get("/api/v1/backups", params={"job": job, "limit": 1}).json()["items"]
        if items and items[0]["id"] > last_id:
            record = items[0]
            break
        if time.time() - start > 1800:
            raise SystemExit("the backup did not finish in 30 minutes")
    cpu = serve_cpu_seconds(instance) - cpu
    if record["result"] != "success":
        raise SystemExit(f"backup failed: {record['error_code']}: {record['error_message']}")
    finished = dt.datetime.fromisoformat(record["finished_at"]).timestamp()
    return finished - start, cpu, record


def cli_backup(instance: harness.Hengxin, job: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = instance.cli("backup", "run", "--quiet", job, timeout=1800)
    return time.perf_counter() - start, result.stdout.strip()


def api_drill(client: Any) -> tuple[float, dict[str, Any]]:
    """POST /api/v1/drills and wait for the report; returns the wall-clock (report and teardown included)."""
    start = time.perf_counter()
    response = client.post("/api/v1/drills", json={})
    if response.status_code != 202:
        raise SystemExit(f"POST /api/v1/drills: {response.status_code} {response.text[:500]}")
    drill_id = response.json()["id"]
    while True:
        report = client.get(f"/api/v1/drills/{drill_id}").json()
        if report.get("result") not in (None, "running"):
            seconds = time.perf_counter() - start
            break
        if time.perf_counter() - start > 1800:
            raise SystemExit("the drill did not finish in 30 minutes")
        time.sleep(0.1)
    if report["result"] != "passed":
        raise SystemExit(f"the drill did not pass: {report.get('failing_step')}: {report.get('reason')}")
    return seconds, report


def stop_leftovers(work: Path) -> None:
    """Kill what still runs inside the workspace: a drill's sandbox serve when the bench was cut short."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            inside = os.readlink(entry / "cwd").startswith(str(work))
        except OSError:
            continue
        if inside:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def phase(name: str, started: list[float]) -> None:
    """A progress line on stderr (the figures go to stdout, last)."""
    now = time.perf_counter()
    print(f"[backup bench] {now - started[0]:6.1f} s  {name}", file=sys.stderr, flush=True)


def mb_per_s(size: int, seconds: float) -> float:
    return round(size / 1e6 / seconds, 1) if seconds else 0.0


def overhead(ours: float, theirs: float) -> float:
    return round(100 * (ours / theirs - 1), 1)


def steps_note(record: dict[str, Any]) -> str:
    steps = record["details"].get("step_seconds") or {}
    order = ["sources", "manifest", "backup", "retention", "copies"]
    names = sorted(steps, key=lambda name: order.index(name) if name in order else len(order))
    return ", ".join(f"{name} {steps[name]:.2f} s" for name in names)


# -- the scenario --------------------------------------------------------------------------------------------

RETENTION = ["--keep-daily=7", "--keep-weekly=5", "--keep-monthly=12"]  # the job's default retention


def hengxin_side(result: dict[str, Any], label: str, instance: harness.Hengxin, client: Any, job: str) -> None:
    result[f"hengxin_{label}_s"], result[f"hengxin_{label}_cpu_s"], record = api_backup(instance, client, job)
    result[f"hengxin_{label}_steps"] = record["details"].get("step_seconds")
    result[f"hengxin_{label}_record"] = record


def restic_side(result: dict[str, Any], label: str, peer: ResticPeer, data: Path) -> None:
    result[f"restic_{label}_s"], result[f"restic_{label}_cpu_s"], result[f"restic_{label}"] = peer.backup(data)
    # An operator's script doing what the job does after its backup: the same retention.
    forget = ["forget", "--prune", "--group-by=tags", "--tag=bench", *RETENTION]
    result[f"restic_{label}_forget_s"], _, _ = peer.run(*forget)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    args = harness.arguments(__doc__.splitlines()[0])
    total = (64 if args.quick else 1024) << 20
    rounds = 1 if args.quick else 4  # even: each side goes first equally often
    restic_binary = harness.require("restic", "the Debian package restic")
    version = subprocess.run([restic_binary, "version"], capture_output=True, text=True).stdout.strip()

    clock = [time.perf_counter()]
    measured: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    with harness.workspace(SCENARIO) as work:
        data = work / "data"
        generated_at = time.perf_counter()
        dataset = generate(data, total, seed=13)
        generation_seconds = round(time.perf_counter() - generated_at, 1)
        size = dataset["bytes"]
        phase(f"generated {size >> 20} MiB in {dataset['files']} files", clock)

        (work / "hengxin").mkdir()
        # --quick only checks that the script works: the key store's scrypt cost is lowered there, to stay in budget.
        instance = harness.hengxin_instance(work / "hengxin", extra_toml=configure(data, work / "repositories", rounds),
                                            production_costs=not args.quick)
        instance.cli("backup", "init-repos", "--create-passwords")
        peers = [ResticPeer(work / "peer" / str(number), restic_binary) for number in range(1, rounds + 1)]
        for peer in peers:
            peer.run("init")
        phase(f"instance initialised, {2 * rounds} repositories created", clock)

        instance.start()
        try:
            with instance.client(timeout=120) as client:
                # Each round: a job's first backup into its fresh repository and restic's into its own, then
                # both unchanged.  Ours and theirs alternate, so both see the same page cache and machine load.
                for number, peer in enumerate(peers, start=1):
                    job = f"{JOB}-{number}"
                    result: dict[str, Any] = {"order": "hengxin first" if number % 2 else "restic first"}
                    for label in ("first", "unchanged"):
                        # Who goes first alternates between rounds: neither side always follows the other's writes.
                        if number % 2:
                            hengxin_side(result, label, instance, client, job)
                            restic_side(result, label, peer, data)
                        else:
                            restic_side(result, label, peer, data)
                            hengxin_side(result, label, instance, client, job)
                    measured.append(result)
                    phase(f"round {number}: first and unchanged backups", clock)
                if not args.quick:
                    runs["hengxin_cli_unchanged_s"], runs["hengxin_cli_output"] = cli_backup(instance, f"{JOB}-1")
                    phase("`hengxin backup run` (CLI)", clock)
                runs["drill_wall_s"], report = api_drill(client)
                phase("drill", clock)
        finally:
            instance.stop()
            stop_leftovers(work)

        # The peer reads back and restores the very snapshot the drill restored, from Hengxin's repository.
        restore_env = dict(peers[0].env)
        restore_env["RESTIC_REPOSITORY"] = str(work / "repositories" / "hengxin-1")
        restore_env["RESTIC_PASSWORD_FILE"] = str(instance.data_dir / "secrets" / "repo-local-1")
        runs["restic_check_read_data_s"], _, _ = peers[0].run("check", "--read-data", env=restore_env)
        runs["restic_restore_s"], _, _ = peers[0].run(
            "restore", report["snapshot"]["id"], f"--target={work / 'restored-by-restic'}", env=restore_env
        )
        phase("restic check --read-data and restore", clock)

    def typical(key: str) -> float:
        return round(median([result[key] for result in measured]), 2)

    steps = {step["name"]: step["seconds"] for step in report["steps"]}
    rto = report["rto_seconds"]
    mib = size >> 20
    rows = []
    for label, words in (("first", "first run"), ("unchanged", "unchanged re-run")):
        ours, theirs = typical(f"hengxin_{label}_s"), typical(f"restic_{label}_s")
        extra = overhead(ours, theirs)
        each = ", ".join(f"{overhead(r[f'hengxin_{label}_s'], r[f'restic_{label}_s']):+.0f} %" for r in measured)
        middle = sorted(measured, key=lambda r: r[f"hengxin_{label}_s"])[len(measured) // 2]
        rows.append(harness.row(
            f"backup of {mib} MiB, {words}", ours, "s", peer="restic backup", peer_value=theirs,
            target="overhead <= 5 %", met=extra <= 5.0,
            note=(f"overhead {extra:+.1f} % (rounds: {each}); {mb_per_s(size, ours)} vs {mb_per_s(size, theirs)} MB/s;"
                  f" CPU {typical(f'hengxin_{label}_cpu_s'):.1f} vs {typical(f'restic_{label}_cpu_s'):.1f} s; "
                  f"Hengxin's steps: {steps_note(middle[f'hengxin_{label}_record'])}"),
        ))
        script = round(median([r[f"restic_{label}_s"] + r[f"restic_{label}_forget_s"] for r in measured]), 2)
        rows.append(harness.row(
            f"backup of {mib} MiB, {words}, beside a script that also applies the retention", ours, "s",
            peer="restic backup + forget --prune", peer_value=script,
            note=f"overhead {overhead(ours, script):+.1f} %; like for like, no target",
        ))
    if "hengxin_cli_unchanged_s" in runs:
        rows.append(harness.row(
            f"backup of {mib} MiB, unchanged re-run, `hengxin backup run`", round(runs["hengxin_cli_unchanged_s"], 2),
            "s", peer="restic backup", peer_value=typical("restic_unchanged_s"),
            note="the CLI's own start-up (imports, opening the platform) included; no target",
        ))
    probes = sum(value for name, value in steps.items() if name.startswith("probe:"))
    rows.append(harness.row(
        f"restore drill of {mib} MiB: RTO", rto, "s", peer="restic restore",
        peer_value=round(runs["restic_restore_s"], 2), target="RTO <= 30 s", met=rto <= 30.0,
        note=(f"the drill's own RTO (start to last probe passed): check --read-data "
              f"{steps.get('check_repository', 0):.1f} s (from the start, beside snapshot selection) + restore "
              f"{steps.get('restore', 0):.1f} s (restic alone {runs['restic_check_read_data_s']:.1f} + "
              f"{runs['restic_restore_s']:.1f} s), verify {steps.get('verify_files', 0):.1f} s, sandbox start "
              f"{steps.get('start_sandbox', 0):.1f} s, probes {probes:.1f} s; the whole drill with its signed report "
              f"and teardown {runs['drill_wall_s']:.1f} s"),
    ))
    method = (
        f"{mib} MiB generated per run ({dataset['files']} files: 4 large os.urandom files holding 60 %, the rest "
        "1-256 KiB files, a quarter of them text). Hengxin: `hengxin init`, the directory in [backup] extra_paths, "
        f"{rounds} job(s) each on a fresh local repository with the default retention (keep 7 daily, 5 weekly, 12 "
        "monthly), started with POST /api/v1/backups/<job>/run on `hengxin serve` and timed to the run record (all "
        "sources, manifest, restic backup, retention, record and audit); CPU is the serve's with its restic "
        f"children. Peer: `restic backup` of the same directory into fresh repositories of its own ({version}: same "
        "repository version, compression and key derivation); the like-for-like rows add `restic forget --prune` "
        f"with the same policy. {rounds} round(s) of first + unchanged on the same page cache, who goes first "
        "alternating between rounds; medians. Drill: POST /api/v1/drills with the default [dr] settings (restic "
        "check --read-data, restore, manifest verification, database and audit checks, sandbox serve and HTTP "
        "probes); peer: `restic restore` of the same snapshot."
    )
    harness.save(SCENARIO, {
        "method": method,
        "rows": rows,
        "dataset": {**dataset, "generation_seconds": generation_seconds},
        "restic_version": version,
        "rounds": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if not k.endswith("_record")}
                   for r in measured],
        "runs": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in runs.items()},
        "drill": {
            "rto_seconds": rto,
            "steps": steps,
            "teardown": next((s["detail"] for s in report["steps"] if s["name"] == "teardown"), None),
            "wall_seconds": round(runs["drill_wall_s"], 2),
        },
    }, quick=args.quick, no_save=args.no_save)


if __name__ == "__main__":
    main()
