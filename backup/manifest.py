"""Backup manifests: a record of what a backup held, to verify a restore against.

A :class:`Manifest` lists every regular file and symbolic link under a set of
named *roots* with its SHA-256 and size, plus free-form sections that callers
fill in (database row counts, the head of the audit chain, anything else that
is JSON).  It is written next to the data before ``restic backup`` runs, goes
into the same snapshot, and after a restore :func:`verify_tree` proves that the
restored files are the ones that were backed up.

Naming.  Each root has a name: the key given in a mapping
(``{"database": "/var/lib/hengxin/db"}``) or, for a plain sequence of paths,
the last component of each path.  File keys are POSIX paths that start with
the root name: ``database/hengxin.db``, ``database/wal/000001``.  A root that is
a single file has the root name itself as its key.  ``roots`` in the manifest
remembers the absolute source path of each root, so the manifest also says
where a restic restore puts the files (``<target>/<source path>``).

Cheap re-runs.  When a previous manifest is given, a file whose path, size,
``mtime_ns`` and inode number are unchanged keeps its previous hash instead of
being read again.  A file modified less than :data:`RACY_WINDOW_NS` before it
was hashed is marked unsettled and is always hashed again next time: a second
write within the same timestamp tick could otherwise go unnoticed (git's
"racily clean" problem).  This compares file-system timestamps with the real
clock on purpose; the injectable ``clock`` only stamps ``created``.

Only regular files and symbolic links are recorded (links are not followed;
their target text is hashed).  Empty directories, sockets, FIFOs and devices
are not.  A manifest stored inside one of its own roots would show up as an
extra file when verifying: keep it outside the roots.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backup.errors import (
    IntegrityFailed,
    InvalidBackupRequest,
    ManifestInvalid,
    SourceMissing,
    SourceUnreadable,
)

logger = logging.getLogger("hengxin.backup.manifest")

FORMAT_VERSION = 1
RACY_WINDOW_NS = 2_000_000_000
"""A file modified less than this long before it was hashed is hashed again on the next run."""

_CHUNK_SIZE = 1 << 20
_REPORTED_PROBLEMS = 20
_HASH_THREADS = max(1, min(4, os.cpu_count() or 1))
"""Files are hashed on this many threads (hashlib releases the GIL), so a first backup or a restore check
reads and hashes on every core instead of one."""
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_escape = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]

FILE = "file"
SYMLINK = "symlink"

Clock = Callable[[], datetime]
HashObserver = Callable[[str], None]
Roots = Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FileEntry:
    """One recorded file or symbolic link.

    For a file, ``sha256`` and ``size`` describe its content; for a link they
    describe the bytes of its target and ``target`` holds the target text.
    ``mtime_ns`` and ``inode`` are only used to decide whether the next run may
    reuse the hash; ``settled`` is false when the file was modified too
    shortly before it was hashed for that reuse to be safe.
    """

    kind: str
    size: int
    sha256: str
    mtime_ns: int
    inode: int
    settled: bool = True
    target: str | None = None


@dataclass(frozen=True)
class AuditHead:
    """The last record of the audit chain when the backup was taken."""

    sequence: int
    hash: str


@dataclass(frozen=True)
class Manifest:
    """What one backup contained.  Build it with :func:`build_manifest`; never mutate it.

    ``created`` is timezone-aware UTC.  ``roots`` maps root names to absolute
    source paths; ``files`` maps file keys (see the module documentation) to
    entries.  ``row_counts``, ``audit_head`` and ``sections`` are filled in by
    callers through the ``with_*`` methods, which return new manifests.
    """

    created: datetime
    roots: Mapping[str, str]
    files: Mapping[str, FileEntry]
    row_counts: Mapping[str, int] = field(default_factory=dict)
    audit_head: AuditHead | None = None
    sections: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def with_row_counts(self, row_counts: Mapping[str, int]) -> Manifest:
        """Return a copy whose ``row_counts`` are replaced by ``row_counts``."""
        if any(isinstance(v, bool) or not isinstance(v, int) for v in row_counts.values()):
            raise InvalidBackupRequest("row counts map table names to integers")
        return dataclasses.replace(self, row_counts=dict(row_counts))

    def with_audit_head(self, sequence: int, hash: str) -> Manifest:
        """Return a copy that records the audit chain's head (``sequence`` and record ``hash``)."""
        if isinstance(sequence, bool) or not isinstance(sequence, int) or not isinstance(hash, str):
            raise InvalidBackupRequest("the audit head is an integer sequence and a hash string")
        return dataclasses.replace(self, audit_head=AuditHead(sequence, hash))

    def with_section(self, name: str, value: Any) -> Manifest:
        """Return a copy with a free-form section ``name`` set to ``value`` (must be JSON-serialisable)."""
        try:
            json.dumps(value, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise InvalidBackupRequest(f"manifest section {name!r} is not JSON-serialisable") from e
        return dataclasses.replace(self, sections={**self.sections, name: value})

    def to_json(self) -> str:
        """Serialise to JSON with sorted keys, so equal manifests give equal text.

        Non-ASCII file names are written as ``\\u`` escapes; names that are not
        valid UTF-8 survive as escaped surrogates and read back unchanged.  Each
        file entry is one line (the file list is nearly all of a manifest, and
        writing it line by line is many times faster than an indented dump).
        """
        document = {
            "format_version": self.format_version,
            "created": self.created.astimezone(UTC).isoformat(),
            "roots": dict(self.roots),
            "files": {},
            "row_counts": dict(self.row_counts),
            "audit_head": (
                {"sequence": self.audit_head.sequence, "hash": self.audit_head.hash} if self.audit_head else None
            ),
            "sections": dict(self.sections),
        }
        text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True)
        if self.files:
            lines = ",\n".join(
                f"    {_escape(key)}: {_entry_line(self.files[key])}" for key in sorted(self.files)
            )
            # Top-level members are the only ones indented by exactly two spaces.
            text = text.replace('\n  "files": {}', '\n  "files": {\n' + lines + "\n  }", 1)
        return text + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse a manifest written by :meth:`to_json`.

        Raises :class:`ManifestInvalid` when the text is not JSON, a member is
        missing or has the wrong type, or the format version is unknown.
        """
        try:
            document = json.loads(text)
        except ValueError as e:
            raise ManifestInvalid("the manifest is not valid JSON", detail_zh="备份清单不是有效的 JSON") from e
        if not isinstance(document, dict):
            raise ManifestInvalid("the manifest is not a JSON object")
        version = document.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestInvalid(
                f"unsupported manifest format version {version!r} (this program reads {FORMAT_VERSION})",
                detail_zh=f"不支持的备份清单格式版本 {version!r}",
                format_version=version if isinstance(version, int) else None,
            )
        try:
            created = datetime.fromisoformat(_require(document, "created", str))
            if created.tzinfo is None:
                raise ManifestInvalid("the manifest's creation time has no time zone")
            roots = _require(document, "roots", dict)
            files = _require(document, "files", dict)
            row_counts = _require(document, "row_counts", dict)
            sections = _require(document, "sections", dict)
            head = document.get("audit_head")
            audit_head = (
                AuditHead(_require(head, "sequence", int), _require(head, "hash", str))
                if isinstance(head, dict)
                else None
            )
            if head is not None and audit_head is None:
                raise ManifestInvalid("the manifest's audit_head is not an object")
            manifest = cls(
                created=created.astimezone(UTC),
                roots={str(k): _expect(v, str, f"roots.{k}") for k, v in roots.items()},
                files={str(k): _entry_from_json(k, v) for k, v in files.items()},
                row_counts={str(k): _expect(v, int, f"row_counts.{k}") for k, v in row_counts.items()},
                audit_head=audit_head,
                sections=sections,
                format_version=FORMAT_VERSION,
            )
        except ValueError as e:
            raise ManifestInvalid(f"the manifest is malformed: {e}", detail_zh="备份清单格式错误") from e
        return manifest


def build_manifest(
    roots: Roots,
    previous: Manifest | None = None,
    *,
    clock: Clock = _utc_now,
    on_hash: HashObserver | None = None,
) -> Manifest:
    """Hash every regular file and symbolic link under ``roots`` and return the manifest.

    ``roots`` is a mapping from root name to path, or a sequence of paths
    named after their last component.  Entries of ``previous`` are reused for
    files whose size, ``mtime_ns`` and inode are unchanged and that were
    settled.  ``on_hash`` is called with the key of every file actually read.

    Raises :class:`InvalidBackupRequest` for an invalid or duplicate root name
    or a clock without a time zone, :class:`SourceMissing` naming a root that
    does not exist, and :class:`SourceUnreadable` naming a file or directory
    that cannot be read.  Files that vanish while the tree is walked are left
    out (and logged).
    """
    created = clock()
    if created.tzinfo is None or created.utcoffset() is None:
        raise InvalidBackupRequest("the manifest clock must return timezone-aware times")
    named = _name_roots(roots)
    previous_files = previous.files if previous is not None else {}
    walked: list[tuple[str, FileEntry | None]] = []
    to_read: list[tuple[str, str, os.stat_result]] = []
    for name, source in named.items():
        if not os.path.lexists(source):
            raise SourceMissing(
                f"backup source {source} does not exist", detail_zh=f"备份源 {source} 不存在", path=source
            )
        for key, disk_path, status in _walk(name, source):
            old = previous_files.get(key)
            if (
                stat.S_ISREG(status.st_mode)
                and old is not None
                and old.kind == FILE
                and old.settled
                and old.size == status.st_size
                and old.mtime_ns == status.st_mtime_ns
                and old.inode == status.st_ino
            ):
                walked.append((key, old))
            else:
                walked.append((key, None))
                to_read.append((key, disk_path, status))
    read = dict(zip((item[0] for item in to_read), _record_all(to_read), strict=True))
    files: dict[str, FileEntry] = {}
    hashed = 0
    for key, reused in walked:
        entry = reused if reused is not None else read[key]
        if entry is None:
            continue
        if reused is None and entry.kind == FILE:
            hashed += 1
            if on_hash is not None:
                on_hash(key)
        files[key] = entry
    logger.debug("manifest built: %d entries, %d files hashed", len(files), hashed)
    return Manifest(created=created.astimezone(UTC), roots=named, files=files)


class ProblemKind(enum.Enum):
    """How a restored tree differs from its manifest."""

    MISSING = "missing"  # in the manifest, not on disk
    EXTRA = "extra"  # on disk, not in the manifest
    MODIFIED = "modified"  # content (size or SHA-256) or link target differs
    TYPE_CHANGED = "type_changed"  # a file became a link or the other way round


@dataclass(frozen=True)
class Problem:
    """One difference: ``path`` is the manifest key, ``disk_path`` where it was looked for."""

    path: str
    kind: ProblemKind
    disk_path: str
    expected: str | None = None
    actual: str | None = None

    def describe(self) -> str:
        """One line for an operator, e.g. ``database/hengxin.db: modified (sha256 ab12… != cd34…)``."""
        if self.kind is ProblemKind.MODIFIED:
            return f"{self.path}: modified (expected {self.expected}, found {self.actual})"
        if self.kind is ProblemKind.TYPE_CHANGED:
            return f"{self.path}: expected a {self.expected}, found a {self.actual}"
        return f"{self.path}: {self.kind.value}"


def compare_tree(
    manifest: Manifest,
    root_dir: str | os.PathLike[str],
    *,
    roots: Mapping[str, str | os.PathLike[str]] | None = None,
) -> list[Problem]:
    """Hash the tree under ``root_dir`` and return every difference from ``manifest``, sorted by key.

    By default each root is looked for where ``restic restore --target
    root_dir`` puts it: ``root_dir`` joined with the root's absolute source
    path.  ``roots`` overrides that per root name (e.g. to compare the live
    sources).  Every file is read: nothing is reused.  Returns an empty list
    when the tree matches.  Raises :class:`SourceUnreadable` when a file cannot
    be read.
    """
    problems: list[Problem] = []
    for name, source in manifest.roots.items():
        if roots is not None and name in roots:
            location = os.path.abspath(os.fspath(roots[name]))
        else:
            location = os.path.join(os.fspath(root_dir), source.lstrip("/"))
        expected = {key: entry for key, entry in manifest.files.items() if _under_root(key, name)}
        found: dict[str, tuple[str, FileEntry]] = {}
        if os.path.lexists(location):
            items = list(_walk(name, location))
            for (key, disk_path, _status), entry in zip(items, _record_all(items), strict=True):
                if entry is not None:
                    found[key] = (disk_path, entry)
        for key, entry in expected.items():
            disk_path = _disk_path(location, name, key)
            if key not in found:
                problems.append(Problem(key, ProblemKind.MISSING, disk_path))
                continue
            actual = found[key][1]
            if actual.kind != entry.kind:
                problems.append(Problem(key, ProblemKind.TYPE_CHANGED, disk_path, entry.kind, actual.kind))
            elif actual.size != entry.size or actual.sha256 != entry.sha256:
                problems.append(
                    Problem(
                        key,
                        ProblemKind.MODIFIED,
                        disk_path,
                        f"{entry.size} bytes, sha256 {entry.sha256}",
                        f"{actual.size} bytes, sha256 {actual.sha256}",
                    )
                )
        for key, (disk_path, _entry) in found.items():
            if key not in expected:
                problems.append(Problem(key, ProblemKind.EXTRA, disk_path))
    return sorted(problems, key=lambda p: (p.path, p.kind.value))


def verify_tree(
    manifest: Manifest,
    root_dir: str | os.PathLike[str],
    *,
    roots: Mapping[str, str | os.PathLike[str]] | None = None,
) -> None:
    """Verify that the tree under ``root_dir`` is exactly what ``manifest`` records.

    Same layout rules as :func:`compare_tree`.  Returns ``None`` when the tree
    matches.  Raises :class:`IntegrityFailed` naming the first damaged,
    missing or extra file (``extra["path"]``, ``extra["problem"]``), with the
    first few problems in ``extra["problems"]`` and their number in
    ``extra["problem_count"]``; raises :class:`SourceUnreadable` when a file
    cannot be read.
    """
    problems = compare_tree(manifest, root_dir, roots=roots)
    if not problems:
        return
    first = problems[0]
    more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
    raise IntegrityFailed(
        f"restored file {first.describe()}{more}",
        detail_zh=f"恢复的文件 {first.path} 与备份清单不符（{first.kind.value}）"
        + (f"，另有 {len(problems) - 1} 处问题" if more else ""),
        path=first.path,
        problem=first.kind.value,
        problems=[{"path": p.path, "problem": p.kind.value} for p in problems[:_REPORTED_PROBLEMS]],
        problem_count=len(problems),
    )


def restored_path(root_dir: str | os.PathLike[str], source: str | os.PathLike[str]) -> Path:
    """Where ``restic restore --target root_dir`` puts a file backed up from ``source``."""
    return Path(os.fspath(root_dir)) / os.path.abspath(os.fspath(source)).lstrip("/")


# ---------------------------------------------------------------------------
# Walking and hashing.


def _name_roots(roots: Roots) -> dict[str, str]:
    if isinstance(roots, Mapping):
        pairs = [(str(name), os.path.abspath(os.fspath(path))) for name, path in roots.items()]
    elif isinstance(roots, str | os.PathLike):
        raise InvalidBackupRequest("roots must be a mapping or a sequence of paths, not a single path")
    else:
        pairs = []
        for path in roots:
            absolute = os.path.abspath(os.fspath(path))
            pairs.append((os.path.basename(absolute), absolute))
    named: dict[str, str] = {}
    for name, path in pairs:
        if not name or name in (".", "..") or "/" in name or "\x00" in name:
            raise InvalidBackupRequest(f"invalid manifest root name {name!r}")
        if name in named:
            raise InvalidBackupRequest(
                f"two manifest roots are both named {name!r}; pass a mapping with distinct names",
                detail_zh=f"两个清单根目录同名 {name!r}",
            )
        named[name] = path
    if not named:
        raise InvalidBackupRequest("a manifest needs at least one root")
    return named


def _walk(name: str, source: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """Yield ``(key, disk path, lstat)`` for every regular file and link under one root, sorted."""
    try:
        top = os.lstat(source)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _unreadable(source, e) from e
    if not stat.S_ISDIR(top.st_mode):
        yield name, source, top
        return
    pending: list[tuple[str, str]] = [(source, name)]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as scanner:
                children = sorted(scanner, key=lambda e: e.name)
        except FileNotFoundError:
            logger.warning("directory vanished while building the manifest: %s", directory)
            continue
        except OSError as e:
            raise _unreadable(directory, e) from e
        subdirectories: list[tuple[str, str]] = []
        for child in children:
            key = f"{prefix}/{child.name}"
            try:
                status = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise _unreadable(child.path, e) from e
            if stat.S_ISDIR(status.st_mode):
                subdirectories.append((child.path, key))
            elif stat.S_ISREG(status.st_mode) or stat.S_ISLNK(status.st_mode):
                yield key, child.path, status
        pending.extend(reversed(subdirectories))


def _record(key: str, disk_path: str, status: os.stat_result) -> FileEntry | None:
    """Describe one file or link; ``None`` if it vanished."""
    if stat.S_ISLNK(status.st_mode):
        try:
            target = os.readlink(disk_path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _unreadable(disk_path, e) from e
        encoded = os.fsencode(target)
        return FileEntry(
            kind=SYMLINK,
            size=len(encoded),
            sha256=hashlib.sha256(encoded).hexdigest(),
            mtime_ns=status.st_mtime_ns,
            inode=status.st_ino,
            target=target,
        )
    try:
        return _hash_file(disk_path)
    except FileNotFoundError:
        logger.warning("file vanished while building the manifest: %s", key)
        return None
    except OSError as e:
        raise _unreadable(disk_path, e) from e


def _record_all(items: Sequence[tuple[str, str, os.stat_result]]) -> list[FileEntry | None]:
    """:func:`_record` of every ``(key, disk path, lstat)``, on up to :data:`_HASH_THREADS` threads.

    Results come back in the order given.  The first error (in that order, among the files read before the
    workers stopped) is raised once every worker has stopped.
    """
    if len(items) < 2 or _HASH_THREADS == 1:
        return [_record(*item) for item in items]
    results: list[FileEntry | None] = [None] * len(items)
    errors: dict[int, BaseException] = {}
    positions = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if errors:
                    return
                index = next(positions, None)
            if index is None:
                return
            try:
                results[index] = _record(*items[index])
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                with lock:
                    errors[index] = e
                return

    workers = [threading.Thread(target=work, name=f"manifest-hash-{n}") for n in range(_HASH_THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[min(errors)]
    return results


def _hash_file(path: str) -> FileEntry:
    """Hash a regular file; the size, mtime and inode recorded are those of the file that was read.

    If the file changes while it is read, it is read once more; if it changes
    again the entry is kept but marked unsettled.
    """
    for attempt in range(2):
        with open(path, "rb", buffering=0) as handle:
            before = os.fstat(handle.fileno())
            digest = hashlib.sha256()
            size = 0
            while chunk := handle.read(_CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
            after = os.fstat(handle.fileno())
        stable = before.st_size == after.st_size == size and before.st_mtime_ns == after.st_mtime_ns
        if stable or attempt == 1:
            settled = stable and time.time_ns() - after.st_mtime_ns >= RACY_WINDOW_NS
            if not stable:
                logger.warning("file changed while it was hashed: %s", path)
            return FileEntry(
                kind=FILE,
                size=size,
                sha256=digest.hexdigest(),
                mtime_ns=after.st_mtime_ns,
                inode=after.st_ino,
                settled=settled,
            )
    raise AssertionError("unreachable")


def _unreadable(path: str, error: OSError) -> SourceUnreadable:
    return SourceUnreadable(
        f"cannot read {path}: {error.strerror or type(error).__name__}",
        detail_zh=f"无法读取 {path}",
        items=[path],
        item_count=1,
    )


def _under_root(key: str, name: str) -> bool:
    return key == name or key.startswith(name + "/")


def _disk_path(location: str, name: str, key: str) -> str:
    return location if key == name else os.path.join(location, key[len(name) + 1 :])


# ---------------------------------------------------------------------------
# JSON helpers.


def _entry_line(entry: FileEntry) -> str:
    """One file entry as compact JSON with sorted keys (what ``json.dumps(..., sort_keys=True)`` writes)."""
    target = f", \"target\": {_escape(entry.target)}" if entry.target is not None else ""
    return (
        f'{{"inode": {int(entry.inode)}, "kind": {_escape(entry.kind)}, "mtime_ns": {int(entry.mtime_ns)}, '
        f'"settled": {"true" if entry.settled else "false"}, "sha256": {_escape(entry.sha256)}, '
        f'"size": {int(entry.size)}{target}}}'
    )


def _entry_from_json(key: str, data: Any) -> FileEntry:
    """Read one file entry; well-formed entries take a fast path, anything else the checks that name the fault."""
    if type(data) is dict:
        kind, size, sha256 = data.get("kind"), data.get("size"), data.get("sha256")
        mtime_ns, inode, settled = data.get("mtime_ns"), data.get("inode"), data.get("settled")
        if (
            (kind == FILE or (kind == SYMLINK and type(data.get("target")) is str))
            and type(size) is int
            and type(mtime_ns) is int
            and type(inode) is int
            and type(settled) is bool
            and type(sha256) is str
            and _SHA256_HEX.fullmatch(sha256) is not None
        ):
            return FileEntry(kind, size, sha256, mtime_ns, inode, settled, data["target"] if kind == SYMLINK else None)
    return _entry_from_json_checked(key, data)


def _entry_from_json_checked(key: str, data: Any) -> FileEntry:
    if not isinstance(data, dict):
        raise ValueError(f"files.{key} is not an object")
    kind = _require(data, "kind", str)
    if kind not in (FILE, SYMLINK):
        raise ValueError(f"files.{key}.kind is {kind!r}")
    sha256 = _require(data, "sha256", str)
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"files.{key}.sha256 is not a SHA-256 in hex")
    target = data.get("target")
    if kind == SYMLINK and not isinstance(target, str):
        raise ValueError(f"files.{key} is a link without a target")
    return FileEntry(
        kind=kind,
        size=_require(data, "size", int),
        sha256=sha256,
        mtime_ns=_require(data, "mtime_ns", int),
        inode=_require(data, "inode", int),
        settled=_require(data, "settled", bool),
        target=target if kind == SYMLINK else None,
    )


def _require(container: Any, name: str, kind: type) -> Any:
    if not isinstance(container, dict) or name not in container:
        raise ValueError(f"member {name!r} is missing")
    return _expect(container[name], kind, name)


def _expect(value: Any, kind: type, name: str) -> Any:
    if kind is int and isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be of type {kind.__name__}")
    return value
