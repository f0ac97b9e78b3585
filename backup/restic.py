"""The restic adapter: the only module in Hengxin that runs the restic binary.

A :class:`Restic` object stands for one repository opened with one password
file.  Each method runs one restic command in a child process and returns a
frozen dataclass, or raises a :class:`backup.errors.BackupError` leaf; no
``subprocess`` or ``json`` exception leaves this module.

Secrets.  The repository password is handed to restic only as the *path* in
``RESTIC_PASSWORD_FILE``, set in the environment built for that one call.  The
repository location travels in ``RESTIC_REPOSITORY`` rather than argv, so a
URL with embedded credentials does not show up in ``ps`` either.  Every call
starts from a small fixed environment (``PATH``, ``HOME``, ``TMPDIR``,
``LANG=C``, ``TZ=UTC``) plus the configured extra variables; ``os.environ`` is
read but never changed.  restic's stderr is trimmed and scrubbed of the
password before it is put in an error or a log record, although restic does
not normally print it.

restic versions.  The adapter is written against restic 0.14 (Debian 12) and
gates newer flags on the version ``restic version`` reports.  Facts about 0.14
it relies on, checked against the real binary:

* every failure exits 1 (codes 10/11/12 arrive in 0.17), so failures are also
  classified by message: "wrong password or no key found", "Is there a
  repository at the following location?", "repository is already locked";
* ``init --json`` prints plain text; ``check --json`` and ``restore --json``
  print plain text too;
* ``backup --json`` prints ``status`` lines and one final ``summary`` line on
  stdout, and per-file ``error`` lines on stderr; exit code 3 means some source
  files could not be read (the snapshot is still saved);
* a missing top-level source path is only a warning (exit 0), so
  :meth:`Restic.backup` checks the paths itself;
* ``copy`` reads the *source* from ``--from-repo``/``RESTIC_FROM_REPOSITORY``
  and ``RESTIC_FROM_PASSWORD_FILE`` and writes to the main repository;
  ``--repo2`` (0.10 to 0.13, where the main repository was the source) is
  deprecated in 0.14;
* a write error such as "read-only file system" is retried with back-off for
  about a minute; the adapter recognises these permanent errors in the stderr
  stream and stops restic at once;
* on SIGINT restic removes its lock before exiting (exit 130); on SIGTERM or
  SIGKILL the lock stays behind and blocks exclusive operations until
  ``unlock``, even though its process is gone;
* ``backup`` of an absolute path stores the full path in the snapshot tree, so
  ``restore`` writes ``<target>/<absolute source path>`` and ``dump`` takes the
  absolute path.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backup.errors import (
    BackupConfigurationError,
    BackupError,
    IntegrityFailed,
    InvalidBackupRequest,
    PathNotInSnapshot,
    RepositoryExists,
    RepositoryLocked,
    RepositoryNotFound,
    RepositoryUnwritable,
    ResticFailed,
    ResticMissing,
    ResticTimeout,
    ResticUnsupported,
    SnapshotNotFound,
    SourceMissing,
    SourceUnreadable,
    WrongPassword,
)

logger = logging.getLogger("hengxin.backup.restic")

DEFAULT_TIMEOUT_SECONDS = 6 * 3600.0
"""Default limit for one restic call; a nightly backup of a data centre node fits well inside it."""

VERSION_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0
"""How long restic gets after SIGINT to remove its lock before its process group is killed."""

STDERR_EXCERPT_LINES = 20
STDERR_EXCERPT_CHARS = 2000
_STDERR_MEMORY_LINES = 5000
_MAX_REPORTED_ITEMS = 50

_SNAPSHOT_ID = re.compile(r"^(?:latest|[0-9a-f]{8,64})$")
_READ_DATA_SUBSET = re.compile(r"^(?:[1-9]\d*/[1-9]\d*|\d+(?:\.\d+)?%|\d+[kKmMgGtT]?)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_STATS_MODES = frozenset({"restore-size", "files-by-contents", "blobs-per-file", "raw-data"})
_OPTION_NAME = re.compile(r"^[a-z0-9]+(?:\.[a-z0-9-]+)+$")

# Environment variables that this adapter sets itself: callers may not override them,
# and a plain-text password variable is refused outright.
_RESERVED_ENV_PREFIXES = ("RESTIC_PASSWORD", "RESTIC_REPOSITORY", "RESTIC_FROM_", "RESTIC_CACHE_DIR")


@dataclass(frozen=True, order=True)
class ResticVersion:
    """A restic release number, comparable: ``ResticVersion(0, 14, 0) < ResticVersion(0, 17, 3)``."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> ResticVersion:
        """Parse the output of ``restic version`` ("restic 0.14.0 compiled with go1.19.8 ...").

        Raises :class:`ResticFailed` when the text holds no version number.
        """
        match = re.search(r"\brestic (?:v)?(\d+)\.(\d+)\.(\d+)", text)
        if match is None:
            raise ResticFailed("cannot read the restic version", detail_zh="无法识别 restic 版本", output=text[:200])
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


MINIMUM_VERSION = ResticVersion(0, 10, 0)
"""Oldest restic the adapter accepts (``copy`` appeared in 0.10); only 0.14 is tested."""
COPY_FROM_REPO_VERSION = ResticVersion(0, 14, 0)
NO_SCAN_VERSION = ResticVersion(0, 15, 0)
SKIP_IF_UNCHANGED_VERSION = ResticVersion(0, 17, 0)

# Exit codes.  0.14 uses only 0, 1, 3 and 130 (plus 2 from a few commands such as
# dump); 0.17 added 10, 11 and 12.
EXIT_OK = 0
EXIT_FATAL = 1
EXIT_SOURCE_UNREADABLE = 3
EXIT_NO_REPOSITORY = 10
EXIT_LOCK_FAILED = 11
EXIT_WRONG_PASSWORD = 12
EXIT_INTERRUPTED = 130


# ---------------------------------------------------------------------------
# Values returned by the adapter.


@dataclass(frozen=True)
class BackupSummary:
    """restic's final report of one backup run.

    ``snapshot_id`` is the short ID of the new snapshot; it is ``None`` only
    when restic >= 0.17 skipped an unchanged backup (``skip_if_unchanged``).
    ``duration`` is restic's own measurement, in seconds.
    """

    snapshot_id: str | None
    files_new: int
    files_changed: int
    files_unmodified: int
    dirs_new: int
    dirs_changed: int
    dirs_unmodified: int
    data_added: int
    total_files_processed: int
    total_bytes_processed: int
    duration: float


@dataclass(frozen=True)
class BackupProgress:
    """One ``status`` line of a running backup; ``percent_done`` is a fraction from 0.0 to 1.0."""

    percent_done: float
    total_files: int
    files_done: int
    total_bytes: int
    bytes_done: int
    current_files: tuple[str, ...]


ProgressCallback = Callable[[BackupProgress], None]


@dataclass(frozen=True)
class Snapshot:
    """A snapshot as ``restic snapshots`` lists it; ``time`` is timezone-aware UTC.

    ``original`` is set on snapshots made by ``copy``: the full ID of the
    snapshot they were copied from.
    """

    id: str
    short_id: str
    time: datetime
    hostname: str
    username: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    tree: str
    parent: str | None
    original: str | None


@dataclass(frozen=True)
class SnapshotNode:
    """One entry of ``restic ls``: ``path`` is its absolute path inside the snapshot."""

    path: str
    name: str
    type: str
    size: int | None
    mode: int | None
    mtime: datetime | None


@dataclass(frozen=True)
class ForgetResult:
    """Full IDs of the snapshots a retention policy kept and removed.

    ``kept_times`` holds the time of each kept snapshot, in the same order, as
    restic printed it (RFC 3339 with the offset it was recorded with).
    """

    kept: tuple[str, ...]
    removed: tuple[str, ...]
    kept_times: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepositoryStats:
    """``restic stats`` in one of its modes; ``total_blob_count`` is only reported for ``raw-data``."""

    mode: str
    total_size: int
    total_file_count: int
    snapshots_count: int | None
    total_blob_count: int | None


# ---------------------------------------------------------------------------
# Pure helpers: parsing restic output and classifying failures.  They are module
# functions so that unit tests can feed them real restic 0.14 output.


def parse_restic_time(text: str) -> datetime:
    """Parse a restic timestamp (RFC 3339 with up to nine fractional digits) into aware UTC.

    Raises :class:`ResticFailed` when the text is not a timestamp.
    """
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    if match is None:
        raise ResticFailed("restic printed a timestamp that cannot be parsed", value=text[:64])
    base, fraction, zone = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    parsed = datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")
    return parsed.astimezone(UTC)


def parse_backup_summary(message: Mapping[str, Any]) -> BackupSummary:
    """Build a :class:`BackupSummary` from the decoded ``summary`` line of ``backup --json``."""

    def count(name: str) -> int:
        value = message.get(name, 0)
        return int(value) if isinstance(value, int | float) else 0

    snapshot_id = message.get("snapshot_id")
    return BackupSummary(
        snapshot_id=str(snapshot_id) if snapshot_id else None,
        files_new=count("files_new"),
        files_changed=count("files_changed"),
        files_unmodified=count("files_unmodified"),
        dirs_new=count("dirs_new"),
        dirs_changed=count("dirs_changed"),
        dirs_unmodified=count("dirs_unmodified"),
        data_added=count("data_added"),
        total_files_processed=count("total_files_processed"),
        total_bytes_processed=count("total_bytes_processed"),
        duration=float(message.get("total_duration", 0.0) or 0.0),
    )


def parse_backup_progress(message: Mapping[str, Any]) -> BackupProgress:
    """Build a :class:`BackupProgress` from a decoded ``status`` line of ``backup --json``."""
    return BackupProgress(
        percent_done=float(message.get("percent_done", 0.0) or 0.0),
        total_files=int(message.get("total_files", 0) or 0),
        files_done=int(message.get("files_done", 0) or 0),
        total_bytes=int(message.get("total_bytes", 0) or 0),
        bytes_done=int(message.get("bytes_done", 0) or 0),
        current_files=tuple(str(f) for f in message.get("current_files") or ()),
    )


def parse_snapshot(data: Mapping[str, Any]) -> Snapshot:
    """Build a :class:`Snapshot` from one element of ``snapshots --json``."""
    snapshot_id = str(data["id"])
    return Snapshot(
        id=snapshot_id,
        short_id=str(data.get("short_id") or snapshot_id[:8]),
        time=parse_restic_time(str(data["time"])),
        hostname=str(data.get("hostname", "")),
        username=str(data.get("username", "")),
        paths=tuple(str(p) for p in data.get("paths") or ()),
        tags=tuple(str(t) for t in data.get("tags") or ()),
        tree=str(data.get("tree", "")),
        parent=str(data["parent"]) if data.get("parent") else None,
        original=str(data["original"]) if data.get("original") else None,
    )


def parse_init_output(stdout: str) -> str | None:
    """Return the new repository's ID from ``init`` output (plain text in 0.14, JSON later)."""
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("id"):
                return str(message["id"])
    match = re.search(r"created restic repository ([0-9a-f]+) at", stdout)
    return match.group(1) if match else None


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret, and credentials in URLs, with ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return redact_url_credentials(text)


def redact_url_credentials(text: str) -> str:
    """Hide the user-info part of URLs (``rest:https://user:pw@host/`` -> ``rest:https://***@host/``)."""
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", text)


_STACK_FRAME = re.compile(r"^(?:\t.*|(?:main|runtime|github\.com/\S+|golang\.org/\S+)\.\S*)$")
_RETRY_LINE = re.compile(r"returned error, retrying after")


def excerpt_stderr(stderr: str) -> str:
    """Shorten restic's stderr for an error message.

    Go stack traces and all but the last back-off retry line are dropped; at most
    the last :data:`STDERR_EXCERPT_LINES` lines and :data:`STDERR_EXCERPT_CHARS`
    characters are kept.  The caller scrubs secrets first.
    """
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip() and not _STACK_FRAME.match(line)]
    retry_indexes = [i for i, line in enumerate(lines) if _RETRY_LINE.search(line)]
    if len(retry_indexes) > 1:
        dropped = set(retry_indexes[:-1])
        lines = [line for i, line in enumerate(lines) if i not in dropped]
    text = "\n".join(lines[-STDERR_EXCERPT_LINES:])
    if len(text) > STDERR_EXCERPT_CHARS:
        text = "..." + text[-STDERR_EXCERPT_CHARS:]
    return text


_NO_REPOSITORY = re.compile(
    r"Is there a repository at the following location\?|repository does not exist"
    r"|unable to open config file: .*no such file or directory",
    re.IGNORECASE,
)
_WRONG_PASSWORD = re.compile(r"wrong password or no key found|an empty password is not a password")
_LOCKED = re.compile(r"repository is already locked(?: exclusively)?(?: by (?P<by>[^\n]*))?")
_PERMANENT_WRITE_ERROR = re.compile(
    r"read-only file system|permission denied|operation not permitted|no space left on device"
    r"|disk quota exceeded",
    re.IGNORECASE,
)
_WRITE_OPERATION = re.compile(r"\bSave\(|\bRemove\(|unable to create lock|-tmp-|\bMkdir\b|create repository")
_INTEGRITY = re.compile(
    r"repository contains errors|Pack ID does not match|LoadIndex returned errors|error loading index"
    r"|ciphertext verification failed|invalid data returned|unexpected file size|does not exist",
)
_PACK_ID = re.compile(r"\bpack ([0-9a-f]{64})\b|Pack ID does not match, want ([0-9a-f]{64})")
_NO_SNAPSHOT = re.compile(r"no matching ID found|invalid id \"|no snapshot found|snapshot .* not found")
_NOT_IN_SNAPSHOT = re.compile(r"path \"(?P<path>[^\"]*)\" not found in snapshot")


def classify_failure(command: str, exit_code: int, stderr: str, *, unscrubbed: str | None = None) -> BackupError:
    """Turn a failed restic call into the most specific :class:`BackupError` leaf.

    ``stderr`` must already be scrubbed of secrets; it is what the error
    carries.  ``unscrubbed`` is restic's original stderr, used only to decide
    the class: scrubbing a password that happens to be a word of restic's
    message ("wrong") must not hide what happened.  The exit codes of restic
    >= 0.17 are used when present; restic 0.14 exits 1 for nearly everything,
    so its messages decide.  Never raises: the fallback is :class:`ResticFailed`.
    """
    raw = stderr if unscrubbed is None else unscrubbed
    excerpt = excerpt_stderr(stderr)
    context: dict[str, Any] = {"command": command, "exit_code": exit_code, "stderr": excerpt}

    if exit_code == EXIT_WRONG_PASSWORD or _WRONG_PASSWORD.search(raw):
        return WrongPassword(
            "the password file does not open the restic repository",
            detail_zh="密码文件无法打开 restic 仓库",
            **context,
        )
    if exit_code == EXIT_NO_REPOSITORY or _NO_REPOSITORY.search(raw):
        return RepositoryNotFound(
            "there is no restic repository at the configured location",
            detail_zh="配置的位置没有 restic 仓库",
            **context,
        )
    if "config file already exists" in raw:
        return RepositoryExists(
            "a restic repository already exists at the configured location",
            detail_zh="配置的位置已有 restic 仓库",
            **context,
        )
    locked = _LOCKED.search(stderr)
    if exit_code == EXIT_LOCK_FAILED or locked or _LOCKED.search(raw):
        locked_by = (locked.group("by") or "").strip() if locked else ""
        return RepositoryLocked(
            "the restic repository is locked by another process" + (f" ({locked_by})" if locked_by else ""),
            detail_zh="restic 仓库已被其他进程锁定",
            locked_by=locked_by or None,
            **context,
        )
    write_error = next(
        (line for line in raw.splitlines() if _PERMANENT_WRITE_ERROR.search(line) and _WRITE_OPERATION.search(line)),
        None,
    )
    if write_error is not None:
        reason = _PERMANENT_WRITE_ERROR.search(write_error)
        return RepositoryUnwritable(
            f"restic cannot write to the repository: {reason.group(0).lower() if reason else 'write error'}",
            detail_zh="restic 无法写入备份仓库",
            **context,
        )
    if command == "check" and _INTEGRITY.search(raw):
        packs: list[str] = []
        for match in _PACK_ID.finditer(stderr):
            pack = match.group(1) or match.group(2)
            if pack not in packs:
                packs.append(pack)
        named = f": damaged or missing pack {', '.join(packs[:5])}" if packs else ""
        return IntegrityFailed(
            f"restic check found errors in the repository{named}",
            detail_zh="restic check 发现仓库损坏" + (f"：数据包 {', '.join(packs[:5])}" if packs else ""),
            packs=packs,
            **context,
        )
    not_in_snapshot = _NOT_IN_SNAPSHOT.search(stderr)
    if not_in_snapshot:
        return PathNotInSnapshot(
            f"path {not_in_snapshot.group('path')} is not in the snapshot",
            detail_zh=f"快照中不存在路径 {not_in_snapshot.group('path')}",
            path=not_in_snapshot.group("path"),
            **context,
        )
    if _NO_SNAPSHOT.search(raw):
        return SnapshotNotFound("no snapshot matches the given ID", detail_zh="没有与该 ID 匹配的快照", **context)
    if exit_code == EXIT_INTERRUPTED:
        return ResticFailed(f"restic {command} was interrupted", detail_zh=f"restic {command} 被中断", **context)
    last_line = excerpt.splitlines()[-1] if excerpt else f"exit code {exit_code}"
    return ResticFailed(
        f"restic {command} failed: {last_line}",
        detail_zh=f"restic {command} 执行失败",
        **context,
    )


def _validate_snapshot_id(snapshot_id: str) -> str:
    if not isinstance(snapshot_id, str) or not _SNAPSHOT_ID.match(snapshot_id):
        raise InvalidBackupRequest(
            "a snapshot ID is 'latest' or 8 to 64 lowercase hex digits",
            detail_zh="快照 ID 应为 latest 或 8 至 64 位小写十六进制数",
        )
    return snapshot_id


def _validate_word(kind: str, value: str, *, allow_comma: bool = True) -> str:
    if not isinstance(value, str) or not value or _CONTROL_CHARACTERS.search(value):
        raise InvalidBackupRequest(f"invalid {kind}: empty or contains control characters")
    if not allow_comma and "," in value:
        raise InvalidBackupRequest(f"invalid {kind} {value!r}: commas are not allowed")
    return value


# restic versions already asked, by program file (see Restic.version).
_KNOWN_VERSIONS: dict[tuple[str, int, int, int, int], ResticVersion] = {}


def _program_identity(binary: str) -> tuple[str, int, int, int, int] | None:
    """The file a program name or path runs, as (real path, device, inode, size, mtime); None if not found."""
    found = shutil.which(binary, path=_base_environment()["PATH"]) if os.sep not in binary else binary
    if found is None:
        return None
    try:
        real = os.path.realpath(found)
        status = os.stat(real)
    except OSError:
        return None
    return (real, status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _base_environment() -> dict[str, str]:
    """The fixed part of every restic call's environment."""
    return {
        "PATH": os.environ.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME") or str(Path.home()),
        "TMPDIR": tempfile.gettempdir(),
        "LANG": "C",
        "LC_ALL": "C",
        "TZ": "UTC",
    }


@dataclass(frozen=True)
class _Completed:
    command: str
    exit_code: int
    stdout: bytes
    stderr: str
    duration: float


class Restic:
    """One restic repository, opened with one password file.

    ``repository`` is anything restic accepts as ``-r`` (a local path, ``sftp:``,
    ``s3:``, ``rest:`` ...).  ``password_file`` must hold the password; it is
    read only by restic (and, when an error is built, by the scrubber).
    ``extra_env`` adds variables to every call, e.g. ``AWS_ACCESS_KEY_ID`` for
    an S3 repository; it may not set ``RESTIC_PASSWORD*``, ``RESTIC_REPOSITORY*``,
    ``RESTIC_FROM_*`` or ``RESTIC_CACHE_DIR``.  ``cache_dir`` is restic's cache
    (restic's default under ``$HOME`` when ``None``).  ``timeout`` is the default
    limit in seconds for each call.  ``options`` are restic's extended options,
    passed as ``--option=name=value`` to every repository command (for example
    ``sftp.command``, to reach an SFTP server through a given ssh command line);
    they appear in the process list, so they must not hold secrets, and restic
    splits them at commas, so a value may not contain one.

    Raises :class:`BackupConfigurationError` for a forbidden or malformed
    ``extra_env`` or ``options`` or a non-positive timeout.  Nothing is run until a method is
    called.  Methods are safe to call from several threads; each call is its
    own process.
    """

    def __init__(
        self,
        repository: str | os.PathLike[str],
        password_file: str | os.PathLike[str],
        *,
        binary: str | os.PathLike[str] = "restic",
        cache_dir: str | os.PathLike[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if isinstance(repository, os.PathLike):
            repository = os.path.abspath(os.fspath(repository))
        if not repository:
            raise BackupConfigurationError("the restic repository location is empty")
        if timeout <= 0:
            raise BackupConfigurationError("the restic timeout must be positive")
        environment = dict(extra_env or {})
        for name, value in environment.items():
            if not _ENV_NAME.match(name) or "\x00" in str(value):
                raise BackupConfigurationError(f"invalid environment variable name or value for {name!r}")
            if name.startswith(_RESERVED_ENV_PREFIXES):
                raise BackupConfigurationError(
                    f"{name} is set by the restic adapter itself and cannot be configured",
                    detail_zh=f"{name} 由 restic 适配器设置，不能配置",
                )
        for name, value in (options or {}).items():
            if not _OPTION_NAME.match(name) or _CONTROL_CHARACTERS.search(str(value)) or "," in str(value):
                raise BackupConfigurationError(
                    f"invalid restic option {name!r}: names look like sftp.command and values are one line "
                    "without commas",
                    detail_zh=f"restic 选项 {name!r} 无效",
                )
        self.repository: str = str(repository)
        self.password_file: Path = Path(os.path.abspath(os.fspath(password_file)))
        self.binary: str = os.fspath(binary)
        self.cache_dir: Path | None = Path(os.path.abspath(os.fspath(cache_dir))) if cache_dir else None
        self.timeout: float = float(timeout)
        self._extra_env: dict[str, str] = {k: str(v) for k, v in environment.items()}
        self.options: dict[str, str] = {k: str(v) for k, v in (options or {}).items()}
        self._version: ResticVersion | None = None
        self._version_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Restic(repository={redact_url_credentials(self.repository)!r}, binary={self.binary!r})"

    # ------------------------------------------------------------------ version

    def version(self) -> ResticVersion:
        """Return the restic version, running ``restic version`` once per binary file.

        The answer is kept per instance and, across instances, per program file
        (its resolved path, inode, size and modification time): a service opens a
        new adapter for every repository and run, and a replaced binary is asked
        again.  Raises :class:`ResticMissing` when the binary cannot be run and
        :class:`ResticUnsupported` when it is older than :data:`MINIMUM_VERSION`.
        """
        with self._version_lock:
            if self._version is None:
                identity = _program_identity(self.binary)
                known = _KNOWN_VERSIONS.get(identity) if identity is not None else None
                self._version = known or self._ask_version()
                if identity is not None:
                    _KNOWN_VERSIONS[identity] = self._version
            return self._version

    def _ask_version(self) -> ResticVersion:
        completed = self._execute("version", ["version"], env=_base_environment(), timeout=VERSION_TIMEOUT_SECONDS)
        if completed.exit_code != 0:
            raise ResticMissing(
                f"{self.binary} did not run as restic (exit code {completed.exit_code})",
                detail_zh="restic 程序无法运行",
                binary=self.binary,
            )
        version = ResticVersion.parse(completed.stdout.decode("utf-8", "replace"))
        if version < MINIMUM_VERSION:
            raise ResticUnsupported(
                f"restic {version} is older than the oldest supported {MINIMUM_VERSION}",
                detail_zh=f"restic {version} 版本过旧，最低支持 {MINIMUM_VERSION}",
                version=str(version),
            )
        return version

    def supports(self, minimum: ResticVersion) -> bool:
        """Whether the installed restic is at least ``minimum`` (runs ``restic version`` once)."""
        return self.version() >= minimum

    # --------------------------------------------------------------- operations

    def init(self, *, timeout: float | None = None) -> str | None:
        """Create the repository; return its ID as restic prints it (``None`` if it printed none).

        Raises :class:`RepositoryExists` when there already is one, and the
        common errors (:class:`ResticMissing`, :class:`RepositoryUnwritable`,
        :class:`ResticTimeout`, :class:`ResticFailed`).
        """
        completed = self._run("init", ["init", "--json"], timeout=timeout)
        return parse_init_output(completed.stdout.decode("utf-8", "replace"))

    def backup(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        tags: Sequence[str] = (),
        host: str | None = None,
        exclude: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        no_scan: bool = False,
        skip_if_unchanged: bool = False,
        timeout: float | None = None,
    ) -> BackupSummary:
        """Back up ``paths`` into a new snapshot and return restic's summary.

        Paths are made absolute (not resolved: a symbolic link given as a
        source is stored as a link), so the snapshot tree holds the absolute
        paths and ``restore`` recreates them under its target.  ``tags`` are
        attached one by one; ``exclude`` are restic exclude patterns.
        ``progress`` is called from a reader thread for every ``status`` line;
        exceptions it raises are logged and ignored, so a broken progress display
        cannot abort a backup.  ``no_scan`` (restic >= 0.15) and
        ``skip_if_unchanged`` (restic >= 0.17) are ignored on older versions.

        Raises :class:`SourceMissing` naming the first path that does not exist
        (checked before restic runs: restic < 0.19 only warns);
        :class:`SourceUnreadable` when restic reports files it could not read
        (exit code 3 or ``error`` messages), with the items and the incomplete
        snapshot's ID; :class:`InvalidBackupRequest` for empty ``paths`` or
        malformed tags; and the common errors.
        """
        if not paths:
            raise InvalidBackupRequest("no paths to back up", detail_zh="没有需要备份的路径")
        sources = [os.path.abspath(os.fspath(p)) for p in paths]
        for source in sources:
            if not os.path.exists(source):
                raise SourceMissing(
                    f"backup source {source} does not exist",
                    detail_zh=f"备份源 {source} 不存在",
                    path=source,
                )
        args = ["backup", "--json"]
        args += [f"--tag={_validate_word('tag', tag, allow_comma=False)}" for tag in tags]
        if host is not None:
            args.append(f"--host={_validate_word('host name', host)}")
        args += [f"--exclude={_validate_word('exclude pattern', pattern)}" for pattern in exclude]
        if no_scan and self.supports(NO_SCAN_VERSION):
            args.append("--no-scan")
        if skip_if_unchanged:
            if self.supports(SKIP_IF_UNCHANGED_VERSION):
                args.append("--skip-if-unchanged")
            else:
                logger.debug("restic %s has no --skip-if-unchanged; a snapshot is always made", self.version())
        args.append("--")
        args += sources

        state = _BackupOutput(progress)
        completed = self._run(
            "backup",
            args,
            timeout=timeout,
            on_stdout_line=state.feed,
            accept_exit_codes=(EXIT_OK, EXIT_SOURCE_UNREADABLE),
        )
        state.collect_stderr_errors(completed.stderr)
        summary = state.summary
        if completed.exit_code == EXIT_SOURCE_UNREADABLE or state.error_items:
            items = state.error_items
            shown = ", ".join(items[:3]) if items else "(restic named none)"
            raise SourceUnreadable(
                f"restic could not read {len(items) or 'some'} source file(s): {shown}",
                detail_zh=f"restic 无法读取部分源文件：{shown}",
                items=items[:_MAX_REPORTED_ITEMS],
                item_count=len(items),
                snapshot_id=summary.snapshot_id if summary else None,
                exit_code=completed.exit_code,
            )
        if summary is None:
            raise ResticFailed(
                "restic backup finished without a summary",
                detail_zh="restic backup 结束时没有输出摘要",
                command="backup",
                exit_code=completed.exit_code,
                stderr=excerpt_stderr(self._scrub(completed.stderr)),
            )
        return summary

    def snapshots(
        self,
        *,
        tags: Sequence[str] = (),
        host: str | None = None,
        paths: Sequence[str] = (),
        no_lock: bool = False,
        timeout: float | None = None,
    ) -> list[Snapshot]:
        """List snapshots, oldest first, that carry *all* of ``tags`` and match ``host``/``paths``.

        ``no_lock`` lists without taking restic's shared lock, so that the list
        can be read while another command (a ``check``) holds an exclusive one;
        listing only reads snapshot files.  Raises the common errors.
        """
        args = ["--no-lock"] if no_lock else []
        args += ["snapshots", "--json"]
        if tags:
            args.append("--tag=" + ",".join(_validate_word("tag", t, allow_comma=False) for t in tags))
        if host is not None:
            args.append(f"--host={_validate_word('host name', host)}")
        args += [f"--path={_validate_word('path', p)}" for p in paths]
        completed = self._run("snapshots", args, timeout=timeout)
        data = self._decode_json("snapshots", completed.stdout)
        if not isinstance(data, list):
            raise self._unexpected_output("snapshots")
        snapshots = [parse_snapshot(item) for item in data if isinstance(item, dict)]
        return sorted(snapshots, key=lambda s: s.time)

    def restore(
        self,
        snapshot_id: str,
        target: str | os.PathLike[str],
        *,
        include: Sequence[str] = (),
        verify: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Restore a snapshot (``"latest"`` or an ID) under ``target``.

        Files appear at ``<target>/<absolute source path>``.  ``include`` limits
        the restore to matching paths; ``verify`` makes restic re-read the
        restored files.  Raises :class:`SnapshotNotFound`,
        :class:`InvalidBackupRequest` for a malformed ID, and the common errors.
        """
        args = ["restore", _validate_snapshot_id(snapshot_id), f"--target={os.path.abspath(os.fspath(target))}"]
        args += [f"--include={_validate_word('include pattern', pattern)}" for pattern in include]
        if verify:
            args.append("--verify")
        self._run("restore", args, timeout=timeout)

    def check(
        self,
        *,
        read_data: bool = False,
        read_data_subset: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Check the repository's structure and, optionally, read back its data.

        ``read_data`` reads every pack; ``read_data_subset`` reads a part of
        them ("n/t", "x%" or a size such as "500M"; all forms exist in 0.14).
        Returns ``None`` when restic found no errors.  Raises
        :class:`IntegrityFailed` naming the damaged or missing packs restic
        reported, :class:`InvalidBackupRequest` for both options at once or a
        malformed subset, and the common errors.
        """
        args = ["check"]
        if read_data and read_data_subset is not None:
            raise InvalidBackupRequest("read_data and read_data_subset are exclusive")
        if read_data:
            args.append("--read-data")
        if read_data_subset is not None:
            if not _READ_DATA_SUBSET.match(read_data_subset):
                raise InvalidBackupRequest(
                    f"invalid read-data subset {read_data_subset!r}: use n/t, x% or a size such as 500M"
                )
            args.append(f"--read-data-subset={read_data_subset}")
        self._run("check", args, timeout=timeout)

    def forget(
        self,
        *,
        keep_last: int | None = None,
        keep_hourly: int | None = None,
        keep_daily: int | None = None,
        keep_weekly: int | None = None,
        keep_monthly: int | None = None,
        keep_yearly: int | None = None,
        tags: Sequence[str] = (),
        host: str | None = None,
        group_by: str | None = None,
        prune: bool = True,
        timeout: float | None = None,
    ) -> ForgetResult:
        """Apply a retention policy, removing the snapshots it does not keep (and pruning data).

        ``tags``/``host`` restrict which snapshots the policy looks at;
        ``group_by`` is restic's grouping ("host,paths" by default).  Raises
        :class:`InvalidBackupRequest` when no ``keep_*`` is given (restic would
        silently do nothing) or one is negative, and the common errors.
        """
        policy = {
            "last": keep_last,
            "hourly": keep_hourly,
            "daily": keep_daily,
            "weekly": keep_weekly,
            "monthly": keep_monthly,
            "yearly": keep_yearly,
        }
        given = {name: value for name, value in policy.items() if value is not None}
        if not given:
            raise InvalidBackupRequest("a retention policy needs at least one keep_* value")
        if any(not isinstance(v, int) or v < 0 for v in given.values()):
            raise InvalidBackupRequest("keep_* values must be non-negative integers")
        args = ["forget", "--json"] + [f"--keep-{name}={value}" for name, value in given.items()]
        if tags:
            args.append("--tag=" + ",".join(_validate_word("tag", t, allow_comma=False) for t in tags))
        if host is not None:
            args.append(f"--host={_validate_word('host name', host)}")
        if group_by is not None:
            if _CONTROL_CHARACTERS.search(group_by):
                raise InvalidBackupRequest("invalid group-by: contains control characters")
            args.append(f"--group-by={group_by}")
        if prune:
            args.append("--prune")
        completed = self._run("forget", args, timeout=timeout)
        text = completed.stdout.decode("utf-8", "replace")
        start = text.find("[")
        if start < 0:
            raise self._unexpected_output("forget")
        try:
            groups, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError as e:
            raise self._unexpected_output("forget") from e
        kept: list[str] = []
        kept_times: list[str] = []
        removed: list[str] = []
        for group in groups if isinstance(groups, list) else ():
            for snapshot in group.get("keep") or ():
                if "id" in snapshot:
                    kept.append(str(snapshot["id"]))
                    kept_times.append(str(snapshot.get("time", "")))
            removed += [str(s["id"]) for s in group.get("remove") or () if "id" in s]
        return ForgetResult(kept=tuple(kept), removed=tuple(removed), kept_times=tuple(kept_times))

    def copy(
        self,
        to: Restic,
        *,
        snapshot_ids: Sequence[str] = (),
        tags: Sequence[str] = (),
        timeout: float | None = None,
    ) -> None:
        """Copy snapshots from this repository into ``to`` (all of them when no IDs are given).

        Snapshots already copied are skipped by restic.  The copies carry
        ``original`` = the source snapshot's ID; list them with
        ``to.snapshots()``.  restic >= 0.14 is run with the destination as the
        main repository and this one as ``RESTIC_FROM_REPOSITORY``; 0.10 to 0.13
        the other way round with ``RESTIC_REPOSITORY2`` (untested here).

        Raises :class:`BackupConfigurationError` when the two repositories'
        extra environments set one variable to different values (one restic
        process cannot hold both), :class:`WrongPassword` when either password
        is wrong, and the common errors.
        """
        version = self.version()
        merged_extra = dict(self._extra_env)
        for name, value in to._extra_env.items():
            if merged_extra.get(name, value) != value:
                raise BackupConfigurationError(
                    f"cannot copy: both repositories set {name} to different values",
                    detail_zh=f"无法复制：两个仓库的 {name} 设置不同",
                )
            merged_extra[name] = value
        merged_options = dict(self.options)
        for name, value in to.options.items():
            if merged_options.get(name, value) != value:
                raise BackupConfigurationError(
                    f"cannot copy: both repositories set the restic option {name} to different values",
                    detail_zh=f"无法复制：两个仓库的 restic 选项 {name} 设置不同",
                )
            merged_options[name] = value
        to._check_password_file()
        if version >= COPY_FROM_REPO_VERSION:
            repository_env = {
                "RESTIC_REPOSITORY": to.repository,
                "RESTIC_PASSWORD_FILE": str(to.password_file),
                "RESTIC_FROM_REPOSITORY": self.repository,
                "RESTIC_FROM_PASSWORD_FILE": str(self.password_file),
            }
        else:
            repository_env = {
                "RESTIC_REPOSITORY": self.repository,
                "RESTIC_PASSWORD_FILE": str(self.password_file),
                "RESTIC_REPOSITORY2": to.repository,
                "RESTIC_PASSWORD_FILE2": str(to.password_file),
            }
        args = ["copy"]
        if tags:
            args.append("--tag=" + ",".join(_validate_word("tag", t, allow_comma=False) for t in tags))
        ids = [_validate_snapshot_id(s) for s in snapshot_ids]
        if ids:
            args += ["--", *ids]
        self._run(
            "copy",
            args,
            timeout=timeout,
            repository_env=repository_env,
            extra_env=merged_extra,
            options=merged_options,
            secret_files=(self.password_file, to.password_file),
        )

    def unlock(self, *, remove_all: bool = False, timeout: float | None = None) -> None:
        """Remove stale locks (those whose process is gone); ``remove_all`` removes every lock.

        Raises the common errors.
        """
        args = ["unlock"] + (["--remove-all"] if remove_all else [])
        self._run("unlock", args, timeout=timeout)

    def stats(
        self,
        *,
        mode: str = "restore-size",
        snapshot_ids: Sequence[str] = (),
        timeout: float | None = None,
    ) -> RepositoryStats:
        """Return ``restic stats`` for the whole repository or the given snapshots.

        Raises :class:`InvalidBackupRequest` for an unknown mode and the common errors.
        """
        if mode not in _STATS_MODES:
            raise InvalidBackupRequest(f"unknown stats mode {mode!r}; use one of {sorted(_STATS_MODES)}")
        args = ["stats", "--json", f"--mode={mode}"]
        ids = [_validate_snapshot_id(s) for s in snapshot_ids]
        if ids:
            args += ["--", *ids]
        completed = self._run("stats", args, timeout=timeout)
        data = self._decode_json("stats", completed.stdout)
        if not isinstance(data, dict):
            raise self._unexpected_output("stats")
        return RepositoryStats(
            mode=mode,
            total_size=int(data.get("total_size", 0)),
            total_file_count=int(data.get("total_file_count", 0)),
            snapshots_count=int(data["snapshots_count"]) if "snapshots_count" in data else None,
            total_blob_count=int(data["total_blob_count"]) if "total_blob_count" in data else None,
        )

    def ls(self, snapshot_id: str, *, timeout: float | None = None) -> list[SnapshotNode]:
        """List every file, directory and link in a snapshot, in restic's order.

        Raises :class:`SnapshotNotFound` and the common errors.
        """
        completed = self._run("ls", ["ls", "--json", _validate_snapshot_id(snapshot_id)], timeout=timeout)
        nodes: list[SnapshotNode] = []
        for raw in completed.stdout.decode("utf-8", "replace").splitlines():
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(item, dict):
                continue
            kind = item.get("struct_type") or item.get("message_type")
            if kind != "node":
                continue
            nodes.append(
                SnapshotNode(
                    path=str(item.get("path", "")),
                    name=str(item.get("name", "")),
                    type=str(item.get("type", "")),
                    size=int(item["size"]) if "size" in item else None,
                    mode=int(item["mode"]) if "mode" in item else None,
                    mtime=parse_restic_time(str(item["mtime"])) if item.get("mtime") else None,
                )
            )
        return nodes

    def dump(self, snapshot_id: str, path: str, *, timeout: float | None = None) -> bytes:
        """Return the content of one file of a snapshot, without restoring the snapshot.

        ``path`` is the absolute path the file had when it was backed up.  The
        whole content is held in memory: use it for small files such as a
        manifest (a directory comes back as a tar stream).  Raises
        :class:`PathNotInSnapshot`, :class:`SnapshotNotFound`,
        :class:`InvalidBackupRequest` for a relative path, and the common errors.
        """
        if not path.startswith("/") or _CONTROL_CHARACTERS.search(path):
            raise InvalidBackupRequest("dump needs the absolute path the file had when it was backed up")
        completed = self._run("dump", ["dump", _validate_snapshot_id(snapshot_id), "--", path], timeout=timeout)
        return completed.stdout

    # ------------------------------------------------------------------ running

    def _check_password_file(self) -> None:
        """Refuse to run restic without a readable password file; the path stays out of the message."""
        if not (self.password_file.is_file() and os.access(self.password_file, os.R_OK)):
            raise BackupConfigurationError(
                "the restic repository password file is missing or unreadable",
                detail_zh="restic 仓库密码文件不存在或不可读",
            )

    def _environment(
        self,
        repository_env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        env = _base_environment()
        env.update(self._extra_env if extra_env is None else extra_env)
        if self.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        env.update(
            repository_env or {"RESTIC_REPOSITORY": self.repository, "RESTIC_PASSWORD_FILE": str(self.password_file)}
        )
        return env

    def _run(
        self,
        command: str,
        args: list[str],
        *,
        timeout: float | None,
        on_stdout_line: Callable[[bytes], None] | None = None,
        accept_exit_codes: tuple[int, ...] = (EXIT_OK,),
        repository_env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        secret_files: Sequence[Path] = (),
    ) -> _Completed:
        """Run one repository command; raise the classified error unless its exit code is accepted."""
        self._check_password_file()
        self.version()
        secrets = tuple(secret_files) or (self.password_file,)
        chosen = self.options if options is None else options
        option_args = [f"--option={name}={value}" for name, value in sorted(chosen.items())]
        completed = self._execute(
            command,
            [*option_args, *args],
            env=self._environment(repository_env, extra_env),
            timeout=self.timeout if timeout is None else timeout,
            on_stdout_line=on_stdout_line,
            secret_files=secrets,
        )
        if completed.exit_code not in accept_exit_codes:
            raise classify_failure(
                command, completed.exit_code, self._scrub(completed.stderr, secrets), unscrubbed=completed.stderr
            )
        return completed

    def _execute(
        self,
        command: str,
        args: list[str],
        *,
        env: dict[str, str],
        timeout: float,
        on_stdout_line: Callable[[bytes], None] | None = None,
        secret_files: Sequence[Path] = (),
    ) -> _Completed:
        """Start restic in its own process group, collect its output and wait for it.

        On timeout the group gets SIGINT (restic then removes its lock), then
        SIGKILL after :data:`STOP_GRACE_SECONDS`, and :class:`ResticTimeout` is
        raised.  A permanent storage write error in the stderr stream stops
        restic the same way, without waiting for its minute of retries.
        """
        argv = [self.binary, *args]
        logger.debug("restic %s starting: %s", command, " ".join(args))
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise ResticMissing(
                f"cannot run restic binary {self.binary!r}: {e.strerror or type(e).__name__}",
                detail_zh=f"无法运行 restic 程序 {self.binary}",
                binary=self.binary,
            ) from e

        stdout_chunks: list[bytes] = []
        stderr_lines: collections.deque[str] = collections.deque(maxlen=_STDERR_MEMORY_LINES)
        write_failure = threading.Event()

        def read_stdout() -> None:
            stream = process.stdout
            assert stream is not None
            if on_stdout_line is None:
                for chunk in iter(lambda: stream.read(65536), b""):
                    stdout_chunks.append(chunk)
                return
            for line in stream:
                try:
                    on_stdout_line(line)
                except Exception:
                    logger.exception("restic %s: output handler failed; continuing", command)

        def read_stderr() -> None:
            assert process.stderr is not None
            for raw in process.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                stderr_lines.append(line)
                if (
                    not write_failure.is_set()
                    and _RETRY_LINE.search(line)
                    and _PERMANENT_WRITE_ERROR.search(line)
                    and _WRITE_OPERATION.search(line)
                ):
                    write_failure.set()
                    logger.warning("restic %s: permanent write error in the repository; stopping", command)
                    _stop_process_group(process)

        readers = [
            threading.Thread(target=read_stdout, name=f"restic-{command}-stdout", daemon=True),
            threading.Thread(target=read_stderr, name=f"restic-{command}-stderr", daemon=True),
        ]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_process_group(process)
        except BaseException:
            _stop_process_group(process)
            raise
        for reader in readers:
            reader.join(timeout=STOP_GRACE_SECONDS)
        duration = time.monotonic() - started
        exit_code = process.returncode if process.returncode is not None else -1
        logger.info("restic %s: exit code %s after %.2f s (%s)", command, exit_code, duration, " ".join(args))
        stderr = "\n".join(stderr_lines)
        if timed_out:
            raise ResticTimeout(
                f"restic {command} did not finish within {timeout:g} s and was stopped",
                detail_zh=f"restic {command} 未在 {timeout:g} 秒内完成，已被终止",
                command=command,
                timeout_seconds=timeout,
            )
        if write_failure.is_set():
            raise classify_failure(command, exit_code, self._scrub(stderr, secret_files), unscrubbed=stderr)
        return _Completed(command, exit_code, b"".join(stdout_chunks), stderr, duration)

    def _scrub(self, text: str, secret_files: Sequence[Path] = ()) -> str:
        """Remove the passwords held in ``secret_files`` (default: this repository's) from ``text``."""
        secrets: list[str] = []
        for path in secret_files or (self.password_file,):
            try:
                content = path.read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            secrets += [content, content.rstrip("\r\n"), content.strip()]
        return scrub(text, secrets)

    def _decode_json(self, command: str, stdout: bytes) -> Any:
        try:
            return json.loads(stdout.decode("utf-8", "replace"))
        except ValueError as e:
            raise self._unexpected_output(command) from e

    def _unexpected_output(self, command: str) -> ResticFailed:
        return ResticFailed(
            f"restic {command} printed output the adapter cannot read",
            detail_zh=f"无法解析 restic {command} 的输出",
            command=command,
        )


class _BackupOutput:
    """Collects the JSON lines of one ``backup --json`` run."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self._progress = progress
        self.summary: BackupSummary | None = None
        self.error_items: list[str] = []

    def feed(self, raw: bytes) -> None:
        message = _json_object(raw.decode("utf-8", "replace"))
        if message is None:
            return
        kind = message.get("message_type")
        if kind == "summary":
            self.summary = parse_backup_summary(message)
        elif kind == "status" and self._progress is not None:
            self._progress(parse_backup_progress(message))
        elif kind == "error":
            self._add_error(message)

    def collect_stderr_errors(self, stderr: str) -> None:
        for line in stderr.splitlines():
            message = _json_object(line)
            if message is not None and message.get("message_type") == "error":
                self._add_error(message)

    def _add_error(self, message: Mapping[str, Any]) -> None:
        item = message.get("item")
        error = message.get("error")
        if not item and isinstance(error, dict):
            item = error.get("Path") or error.get("message")
        self.error_items.append(str(item or "unknown"))


def _json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGINT the process group (restic removes its lock), then SIGKILL whatever is left."""
    try:
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
