"""The sandbox a drill restores into: a private directory, a scratch database and a ``hengxin serve`` process.

Everything a drill starts is owned by one :class:`Sandbox` and undone by
:meth:`Sandbox.teardown`, whatever happened before: the serve process group is
stopped (SIGTERM, then SIGKILL), a scratch PostgreSQL database is dropped and
the directory is deleted.  The sandbox's configuration is derived from the
restored effective settings with every outward side effect switched off (see
:func:`sandbox_settings`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.secrets import write_private_file
from core.store import build_engine
from dr.errors import DrillCouldNotRun, DrillFailed, SandboxFailed

logger = logging.getLogger("hengxin.dr.sandbox")

SCRATCH_PREFIX = "hengxin_dr_"

# What a prepared sandbox process runs: import the CLI (the slow part), then wait for its arguments.
_PREPARED_SERVE = """
import json, sys
from api.cli import main
line = sys.stdin.readline()
if not line:
    sys.exit(0)
sys.argv = [sys.argv[0], *json.loads(line)]
main()
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` (connections still in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def sandbox_settings(
    effective: Mapping[str, Any],
    *,
    sandbox: Path,
    port: int,
    database_url: str,
    key_directory: Path | None,
    audit_export_dir: Path | None,
    probe_seal: Mapping[str, Any] | None = None,
    audience: str | None = None,
) -> dict[str, Any]:
    """The sandbox's settings: the restored ones with every outward side effect off.

    No LDAP publishing or federation, no backup jobs or scheduler, no alert
    webhook or syslog, no NTP polling, CRL publication and CA maintenance
    pushed beyond the sandbox's lifetime, no scheduled drills, and
    ``[instance] base_url`` pointing at the sandbox itself, so nothing it
    builds refers to (or fetches from) production.

    The restored organisation seals are replaced by ``probe_seal`` (one
    ``[[signing.seals]]`` table, or none), so within the sandbox only the
    probe may sign, and signed outputs are not kept.  With ``audience``, the
    access tokens the sandbox issues carry that ``aud`` (and always the
    sandbox's own ``iss``), so no production relying party accepts them even
    though the restored token key is a copy of production's.
    """
    data = json.loads(json.dumps(dict(effective)))
    data.pop("dr", None)

    def section(name: str) -> dict[str, Any]:
        value = data.get(name)
        if not isinstance(value, dict):
            value = {}
            data[name] = value
        return value

    instance = section("instance")
    instance.update(
        data_dir=str(sandbox / "data"),
        environment="development",
        base_url=f"http://127.0.0.1:{port}",
    )
    section("server").update(host="127.0.0.1", port=port, rate_limit_per_minute=0, trusted_proxies=[])
    database = section("database")
    database.update(url=database_url, admin_url="")
    keys = section("keys")
    if keys.get("backend", "file") == "file":
        keys["directory"] = str(key_directory) if key_directory is not None else ""
    secrets = section("secrets")
    secrets.clear()
    secrets.update(backend="file", directory=str(sandbox / "secrets"))
    audit = section("audit")
    audit["export_dir"] = str(audit_export_dir) if audit_export_dir is not None else ""
    section("alerts").update(webhook_url="", syslog_address="")
    section("logging").update(level="WARNING", format="text")
    section("backup").update(
        scheduler=False, repositories=[], jobs=[], extra_paths=[], state_dir=str(sandbox / "backup")
    )
    section("directory").update(enabled=False, federation=[])
    # The sandbox publishes nothing: no CRL generation, no responder renewal.
    section("ca").update(background_jobs=False)
    section("tsa").update(ntp_servers=[], max_clock_offset_seconds=0.0)
    section("signing").update(seals=[dict(probe_seal)] if probe_seal else [], keep_signed_files=False)
    if audience:
        section("auth")["audience"] = audience
    return data


def to_toml(data: Mapping[str, Any]) -> str:
    """Serialise settings (sections of scalars, lists and tables) as TOML; ``None`` values are left out."""
    lines: list[str] = []
    for name, values in data.items():
        if not isinstance(values, Mapping):
            continue
        lines.append(f"[{name}]")
        for key, value in values.items():
            if value is None:
                continue
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "_-" for c in key):
        return key
    return json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, Mapping):
        items = [f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{" + ", ".join(items) + "}"
    return json.dumps(str(value), ensure_ascii=False)


class Sandbox:
    """A drill's private world.  Use as a context manager, or call :meth:`teardown` yourself."""

    def __init__(self, work_dir: Path, drill_id: str) -> None:
        work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = Path(tempfile.mkdtemp(prefix=f"drill-{drill_id}-", dir=work_dir))
        self.path.chmod(0o700)
        self.drill_id = drill_id
        self.restore_dir = self.path / "restore"
        self.restore_dir.mkdir(mode=0o700)
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.scratch_database: tuple[str, str] | None = None  # (admin URL, database name)
        self._scratch_password: str | None = None
        self._log_handle: Any = None
        self._prepared = False
        self.keep = False
        self.teardown_seconds: dict[str, float] = {}

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.teardown()

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def log_path(self) -> Path:
        return self.path / "serve.log"

    @property
    def base_url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    # -- database -------------------------------------------------------------------------------------

    def sqlite_database(self, restored: Path) -> str:
        """Copy the restored SQLite file into the sandbox; returns its URL."""
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        target = self.data_dir / "hengxin.db"
        shutil.copyfile(restored, target)
        target.chmod(0o600)
        return f"sqlite:///{target}"

    def postgresql_database(
        self, admin_url: str, dump: Path, *, password: str | None, pg_restore: str = "", timeout: float = 3600.0
    ) -> str:
        """Create a scratch database on the production server and ``pg_restore`` the dump into it.

        Returns its URL.  The database is dropped at teardown.  Raises
        :class:`DrillFailed` when pg_restore fails and :class:`DrillCouldNotRun`
        when the server cannot be reached or the tools are missing.
        """
        url = make_url(admin_url)
        name = SCRATCH_PREFIX + self.drill_id.replace("-", "_").lower()
        engine = build_engine(url, pool_size=1, password=password)
        try:
            with engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as e:  # noqa: BLE001 - any failure to reach the server means the drill cannot run
            raise DrillCouldNotRun(
                f"cannot create the scratch database on the PostgreSQL server: {type(e).__name__}",
                detail_zh="无法在 PostgreSQL 服务器上创建临时数据库",
            ) from e
        finally:
            engine.dispose()
        self.scratch_database = (admin_url, name)
        self._scratch_password = password
        binary = pg_restore or shutil.which("pg_restore") or _newest_pg_binary("pg_restore")
        if not binary:
            raise DrillCouldNotRun(
                "pg_restore is not installed: install the Debian package postgresql-client",
                detail_zh="未安装 pg_restore：请安装 postgresql-client",
            )
        env = {
            "PATH": os.environ.get("PATH") or "/usr/bin:/bin",
            "LC_ALL": "C",
            "PGHOST": url.host or "",
            "PGPORT": str(url.port or 5432),
            "PGUSER": url.username or "",
        }
        if password:
            passfile = self.path / "pgpass"
            write_private_file(passfile, f"*:*:*:*:{password}\n".encode())
            env["PGPASSFILE"] = str(passfile)
        completed = subprocess.run(  # noqa: S603 - fixed program, arguments without shell
            [binary, "--no-owner", "--no-privileges", "--exit-on-error", "-d", name, str(dump)],
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            message = completed.stderr.decode("utf-8", "replace").strip().splitlines()
            raise DrillFailed(
                "pg_restore failed: " + (message[-1] if message else f"exit code {completed.returncode}"),
                detail_zh="pg_restore 执行失败",
            )
        return str(url.set(database=name).render_as_string(hide_password=True))

    # -- the serve process -----------------------------------------------------------------------------

    def write_secrets(self, secrets: Mapping[str, str]) -> None:
        directory = self.path / "secrets"
        directory.mkdir(mode=0o700, exist_ok=True)
        for name, value in secrets.items():
            write_private_file(directory / name, value.encode("utf-8"))

    def write_config(self, settings: Mapping[str, Any]) -> Path:
        path = self.path / "sandbox.toml"
        write_private_file(path, to_toml(settings).encode("utf-8"))
        return path

    def prepare(self) -> None:
        """Start the sandbox's Python early, importing the platform while the drill restores and verifies.

        Loading Hengxin's modules is most of a serve's start-up time.  The process imports them, then waits
        for :meth:`start` to send its arguments on stdin; if the drill ends first, :meth:`teardown` stops it
        (or it exits by itself when its stdin closes).  It runs in the sandbox's own process group, in the
        sandbox directory and without ``HENGXIN_`` variables, like the serve it becomes.
        """
        if self.process is not None:
            return
        self._log_handle = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own program, no shell
            [sys.executable, "-c", _PREPARED_SERVE],
            cwd=self.path,
            env=_sandbox_environment(),
            stdin=subprocess.PIPE,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._prepared = True

    def start(self, config: Path, command: list[str] | None = None) -> None:
        """Start ``hengxin --config <config> serve`` in its own process group (no ``HENGXIN_`` variables).

        With no ``command`` and a process made ready by :meth:`prepare`, that process is told to serve;
        otherwise a new one is started.
        """
        assert self.port is not None
        arguments = ["--config", str(config), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if command is None and self._prepared and self.process is not None and self.process.stdin is not None:
            try:
                self.process.stdin.write((json.dumps(arguments) + "\n").encode("utf-8"))
                self.process.stdin.close()
            except OSError:
                # The prepared process has died; wait_ready reports its exit with the log's tail.
                logger.warning("the prepared sandbox process was gone before it could serve")
            return
        self.stop()
        program = command or [sys.executable, "-c", "from api.cli import main; main()"]
        self._log_handle = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own program, no shell
            [*program, *arguments],
            cwd=self.path,
            env=_sandbox_environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float, *, ready: Callable[[httpx.Response], bool] | None = None) -> float:
        """Poll ``/readyz`` until it answers 200; returns the seconds waited.

        Raises :class:`SandboxFailed` (with the end of the serve log) when the
        process exits or the timeout passes.
        """
        assert self.process is not None
        started = time.monotonic()
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() - started < timeout:
                if self.process.poll() is not None:
                    raise SandboxFailed(
                        f"the sandbox instance exited with code {self.process.returncode}: {self.log_tail()}",
                        detail_zh="沙箱实例已退出",
                    )
                try:
                    response = client.get(self.base_url + "/readyz")
                    if response.status_code == 200 and (ready is None or ready(response)):
                        return time.monotonic() - started
                    last = f"/readyz answered {response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as e:
                    last = type(e).__name__
                time.sleep(0.1)
        raise SandboxFailed(
            f"the sandbox instance was not ready within {timeout:g} s ({last})", detail_zh="沙箱实例未在规定时间内就绪"
        )

    def log_tail(self, lines: int = 5) -> str:
        try:
            text_lines = self.log_path.read_text("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text_lines[-lines:])[-800:]

    # -- teardown ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the serve process and everything in its process group."""
        process = self.process
        if process is None:
            return
        try:
            group = os.getpgid(process.pid)
        except ProcessLookupError:
            group = None
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            # Children that outlived the leader, or a leader that ignored SIGTERM.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        self.process = None
        self._prepared = False

    def drop_scratch_database(self) -> None:
        if self.scratch_database is None:
            return
        admin_url, name = self.scratch_database
        engine = build_engine(admin_url, pool_size=1, password=self._scratch_password)
        try:
            with engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()
        self.scratch_database = None

    def teardown(self) -> list[str]:
        """Undo everything; returns the problems met (each also logged), never raises."""
        problems: list[str] = []
        for step in (self.stop, self.drop_scratch_database, self._remove):
            began = time.monotonic()
            try:
                step()
            except Exception as e:  # noqa: BLE001 - teardown must go on; the problem is reported
                logger.exception("sandbox teardown step failed")
                problems.append(f"{step.__name__}: {e}")
            finally:
                self.teardown_seconds[step.__name__.lstrip("_")] = round(time.monotonic() - began, 3)
        return problems

    def _remove(self) -> None:
        if self.keep:
            return
        shutil.rmtree(self.path, ignore_errors=False)


def _sandbox_environment() -> dict[str, str]:
    """The environment of the sandbox's serve: ours without any ``HENGXIN_`` variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HENGXIN_")}


def _newest_pg_binary(name: str) -> str | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None
