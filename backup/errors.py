"""Errors of the backup package.

Every failure of a backup, a restore, a repository check or a manifest
verification is a :class:`BackupError` leaf with a stable dotted ``code``.
The restic adapter (:mod:`backup.restic`) is the only place that turns restic's
exit codes and messages into these classes; callers never see a
``subprocess`` exception.

``detail`` and ``extra`` never contain a repository password.  Where a leaf
carries restic's own output (``stderr``), it has been trimmed and scrubbed of
the password by the adapter before the error was built.
"""

from __future__ import annotations

from core.errors import Category, HengxinError


class BackupError(HengxinError):
    """Root of every backup error."""

    code = "backup.error"
    category = Category.INTERNAL
    title_en = "Backup error"
    title_zh = "备份错误"


class BackupConfigurationError(BackupError):
    """The adapter was configured wrongly (unreadable password file, conflicting environment)."""

    code = "backup.configuration_invalid"
    category = Category.CONFIGURATION
    title_en = "Invalid backup configuration"
    title_zh = "备份配置无效"


class InvalidBackupRequest(BackupError):
    """A call's arguments are malformed (a snapshot ID that is not hex, a tag with a comma)."""

    code = "backup.invalid_request"
    category = Category.INVALID
    title_en = "Invalid backup request"
    title_zh = "备份请求无效"


class ResticMissing(BackupError):
    """The restic binary cannot be found or executed."""

    code = "backup.restic_missing"
    category = Category.CONFIGURATION
    title_en = "The restic program is not installed"
    title_zh = "未安装 restic 程序"


class ResticUnsupported(BackupError):
    """The installed restic is too old for the requested operation."""

    code = "backup.restic_unsupported"
    category = Category.CONFIGURATION
    title_en = "The installed restic version is not supported"
    title_zh = "已安装的 restic 版本不受支持"


class ResticFailed(BackupError):
    """restic exited with an error that no more specific leaf describes.

    ``extra`` holds ``command``, ``exit_code`` and ``stderr`` (trimmed, scrubbed).
    """

    code = "backup.restic_failed"
    category = Category.UNAVAILABLE
    title_en = "The restic command failed"
    title_zh = "restic 命令执行失败"


class ResticTimeout(BackupError):
    """restic ran longer than its time limit; its process group was stopped."""

    code = "backup.timeout"
    category = Category.UNAVAILABLE
    title_en = "The backup operation timed out"
    title_zh = "备份操作超时"


class RepositoryNotFound(BackupError):
    """There is no restic repository at the configured location."""

    code = "backup.repository_not_found"
    category = Category.UNAVAILABLE
    title_en = "Backup repository not found"
    title_zh = "未找到备份仓库"


class RepositoryExists(BackupError):
    """``init`` was asked to create a repository where one already exists."""

    code = "backup.repository_exists"
    category = Category.CONFLICT
    title_en = "A backup repository already exists at this location"
    title_zh = "该位置已存在备份仓库"


class WrongPassword(BackupError):
    """The password file does not open the repository (or holds an empty password)."""

    code = "backup.wrong_password"
    category = Category.CONFIGURATION
    title_en = "The repository password is wrong"
    title_zh = "备份仓库密码错误"


class RepositoryLocked(BackupError):
    """Another restic process holds a conflicting lock; ``extra["locked_by"]`` says who when known."""

    code = "backup.repository_locked"
    category = Category.CONFLICT
    title_en = "The backup repository is locked"
    title_zh = "备份仓库已被锁定"


class RepositoryUnwritable(BackupError):
    """restic could not write to the repository (read-only file system, permissions, full disk)."""

    code = "backup.repository_unwritable"
    category = Category.UNAVAILABLE
    title_en = "The backup repository cannot be written"
    title_zh = "备份仓库不可写"


class SourceMissing(BackupError):
    """A path to back up does not exist; ``extra["path"]`` names it."""

    code = "backup.source_missing"
    category = Category.CONFIGURATION
    title_en = "A backup source path does not exist"
    title_zh = "备份源路径不存在"


class SourceUnreadable(BackupError):
    """Some source files could not be read; the snapshot (if any) is incomplete.

    ``extra["items"]`` lists the unreadable paths restic reported and
    ``extra["snapshot_id"]`` the incomplete snapshot restic still saved.
    """

    code = "backup.source_unreadable"
    category = Category.CONFIGURATION
    title_en = "Some backup source files could not be read"
    title_zh = "部分备份源文件无法读取"


class SnapshotNotFound(BackupError):
    """No snapshot in the repository matches the given ID."""

    code = "backup.snapshot_not_found"
    category = Category.NOT_FOUND
    title_en = "Snapshot not found"
    title_zh = "未找到快照"


class PathNotInSnapshot(BackupError):
    """The snapshot exists but does not contain the requested path."""

    code = "backup.path_not_in_snapshot"
    category = Category.NOT_FOUND
    title_en = "The path is not in the snapshot"
    title_zh = "快照中不存在该路径"


class IntegrityFailed(BackupError):
    """A check found damage.

    From ``restic check``: ``extra["packs"]`` lists the damaged or missing pack
    IDs restic named.  From a manifest verification: ``extra["path"]`` names the
    first damaged, missing or unexpected file and ``extra["problems"]`` lists
    the first few problems.
    """

    code = "backup.integrity_failed"
    category = Category.CONFLICT
    title_en = "Backup integrity check failed"
    title_zh = "备份完整性校验失败"


class ManifestInvalid(BackupError):
    """A manifest document cannot be parsed or has an unknown format version."""

    code = "backup.manifest_invalid"
    category = Category.INVALID
    title_en = "The backup manifest is invalid"
    title_zh = "备份清单无效"


class JobNotFound(BackupError):
    """No backup job of that name is configured."""

    code = "backup.job_not_found"
    category = Category.NOT_FOUND
    title_en = "Backup job not found"
    title_zh = "未找到备份任务"


class JobRunning(BackupError):
    """The job is already running (on this node or another one holding its lease); ``extra["holder"]`` says where."""

    code = "backup.job_running"
    category = Category.CONFLICT
    title_en = "The backup job is already running"
    title_zh = "备份任务正在运行"


class SourceFailed(BackupError):
    """A backup source could not produce its data (a database dump, an export); ``extra["source"]`` names it."""

    code = "backup.source_failed"
    category = Category.UNAVAILABLE
    title_en = "A backup source failed"
    title_zh = "备份源执行失败"


class SecretsInBackup(BackupError):
    """A source would put the secret store (master passphrase, repository passwords) into the backup."""

    code = "backup.secrets_included"
    category = Category.CONFIGURATION
    title_en = "The backup would include the secret store"
    title_zh = "备份将包含机密存储"
