"""Configuration: one TOML file plus ``HENGXIN_`` environment overrides.

Settings are nested sections (``[server]``, ``[database]`` ...).  An environment
variable ``HENGXIN_SERVER__PORT=8001`` overrides ``[server] port``.  Unknown keys
are an error that names the key.  Nothing is read at import time: call
:func:`load_settings` (or build :class:`Settings` directly in tests).

Relative paths in the file are resolved against the directory of the file;
without a file, against the current directory.  Every path option left empty is
derived from ``[instance] data_dir``.
"""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigurationError

CONFIG_ENV = "HENGXIN_CONFIG"
DEFAULT_CONFIG_PATH = Path("var/hengxin.toml")

# An empty string in the file means "derive it from data_dir".
OptionalPath = Annotated[Path | None, BeforeValidator(lambda value: None if value == "" else value)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InstanceSettings(Section):
    name: str = Field("hengxin", description="Name of this platform instance, shown in reports and the audit log.")
    environment: Literal["development", "production"] = Field(
        "development",
        description="'production' refuses unsafe defaults (for example a master passphrase file inside data_dir).",
    )
    data_dir: Path = Field(Path("."), description="Directory holding the database, keys, secrets and exports.")
    timezone: str = Field(
        "Asia/Shanghai", description="Time zone for display, reports and schedules; everything is stored in UTC."
    )
    base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public base URL; CRL, OCSP and CA certificate URLs in certificates are built from it "
        "(plain http:// so that revocation checking does not depend on TLS).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {value!r}") from e
        return value


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="Address `hengxin serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `hengxin serve` listens on.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes of `hengxin serve`. Each holds its own loaded keys and database pool; "
        "background jobs take leases, so any number is safe. Set it to the number of cores.",
    )
    max_body_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, description="Largest accepted request body, in bytes (larger: 413)."
    )
    upload_max_body_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Largest body for document upload routes (PDF signing), in bytes."
    )
    rate_limit_per_minute: int = Field(
        6000, ge=0, description="Requests per minute per client address (0 disables the limit)."
    )
    rate_limit_burst: int = Field(600, ge=1, description="Requests a client may send at once before limiting.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For and client-certificate headers are honoured.",
    )
    request_timeout_seconds: float = Field(60.0, gt=0, description="Longest time a request may take.")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as e:
                raise ValueError(f"{entry!r} is not an IP address or network") from e
        return value


class DatabaseSettings(Section):
    url: str = Field(
        "",
        description="SQLAlchemy URL. Empty: SQLite at data_dir/hengxin.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db (password in the secret store, see password_secret).",
    )
    admin_url: str = Field(
        "",
        description="URL of the schema owner, used for migrations and audit pruning. Empty: same as url.",
    )
    password_secret: str = Field(
        "", description="Name of a secret in the secret store holding the database password (optional)."
    )
    admin_password_secret: str = Field(
        "",
        description="Name of the secret holding the schema owner's password (admin_url). Empty: password_secret.",
    )
    pool_size: int = Field(10, ge=1, description="Connections kept per process (PostgreSQL).")
    echo: bool = Field(False, description="Log every SQL statement (debugging only).")


class AuditSettings(Section):
    checkpoint_every: int = Field(100, ge=1, description="Write a signed checkpoint every N audit records.")
    checkpoint_minutes: int = Field(
        10, ge=1, description="Also write a signed checkpoint when the head moved and this many minutes passed."
    )
    retention_days: int = Field(
        180, ge=180, description="Audit records are kept at least this many days (等保 level 3: at least 180)."
    )
    export_dir: OptionalPath = Field(
        None, description="Where pruned segments are exported before deletion. Empty: data_dir/audit-exports."
    )


class KeySettings(Section):
    backend: Literal["file", "pkcs11", "vault"] = Field("file", description="Where private keys live.")
    directory: OptionalPath = Field(None, description="File backend: key directory. Empty: data_dir/keys.")
    passphrase_secret: str = Field(
        "master-passphrase",
        description="Name of the secret (in the secret store) holding the master passphrase of the file backend.",
    )
    scrypt_log2_n: int = Field(
        17, ge=14, le=22, description="scrypt cost as log2(N) for deriving the key-encryption key (r=8, p=1)."
    )
    default_algorithm: str = Field("ec-p256", description="Algorithm for keys created without an explicit choice.")
    pkcs11_module: Path = Field(
        Path("/usr/lib/softhsm/libsofthsm2.so"),
        description="PKCS#11 backend: absolute path of the vendor's PKCS#11 module (SoftHSM2 by default).",
    )
    pkcs11_token_label: str = Field(
        "hengxin", min_length=1, max_length=32, description="PKCS#11 backend: label of the token holding the keys."
    )
    pkcs11_pin_secret: str = Field(
        "hsm-pin", description="PKCS#11 backend: name of the secret (in the secret store) holding the token's user PIN."
    )
    pkcs11_session_pool_size: int = Field(
        4, ge=1, le=64, description="PKCS#11 backend: sessions kept open and reused (at most this many at once)."
    )
    pkcs11_session_wait_seconds: float = Field(
        10.0, gt=0, description="PKCS#11 backend: how long a signature waits for a free session before failing."
    )
    pkcs11_serialize_calls: bool = Field(
        True,
        description="PKCS#11 backend: make one PKCS#11 call at a time in this process. The module is initialised "
        "without locking arguments, so SoftHSM2 does no locking of its own; set false only for a module that its "
        "vendor documents as thread-safe without them.",
    )
    vault_url: str = Field(
        "https://127.0.0.1:8200",
        description="Vault backend: base URL of Vault or OpenBao, without credentials (the token comes from "
        "vault_token_file, vault_token_env or AppRole).",
    )
    vault_ca_file: OptionalPath = Field(
        None, description="Vault backend: absolute path of the CA bundle for Vault's TLS certificate (empty: system)."
    )
    vault_auth: Literal["token", "approle"] = Field(
        "token", description="Vault backend: log in with a token (file or environment variable) or with AppRole."
    )
    vault_token_file: OptionalPath = Field(
        None, description="Vault backend, token auth: absolute path of a 0600 file holding the token."
    )
    vault_token_env: str = Field(
        "", description="Vault backend, token auth: name of an environment variable holding the token (if no file)."
    )
    vault_approle_mount: str = Field("approle", description="Vault backend, AppRole auth: mount path of the method.")
    vault_role_id_file: OptionalPath = Field(
        None, description="Vault backend, AppRole auth: absolute path of a 0600 file holding the role_id."
    )
    vault_secret_id_file: OptionalPath = Field(
        None, description="Vault backend, AppRole auth: absolute path of a 0600 file holding the secret_id."
    )
    vault_timeout_seconds: float = Field(10.0, gt=0, description="Vault backend: timeout of one request to Vault.")
    vault_renew_before_seconds: int = Field(
        300, ge=0, description="Vault backend: renew a renewable token when less than this many seconds remain."
    )
    vault_transit_mount: str = Field("transit", description="Vault backend: mount path of the Transit engine.")

    @field_validator("pkcs11_module", "vault_ca_file", "vault_token_file", "vault_role_id_file", "vault_secret_id_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("vault_url")
    @classmethod
    def _vault_url(cls, value: str) -> str:
        return _check_vault_url(value)


class SecretSettings(Section):
    backend: Literal["file", "vault"] = Field("file", description="Where named secrets live.")
    directory: OptionalPath = Field(
        None, description="File backend: one 0600 file per secret. Empty: data_dir/secrets."
    )
    vault_url: str = Field(
        "https://127.0.0.1:8200",
        description="Vault backend: base URL of Vault or OpenBao, without credentials (the token comes from "
        "vault_token_file, vault_token_env or AppRole).",
    )
    vault_ca_file: OptionalPath = Field(
        None, description="Vault backend: absolute path of the CA bundle for Vault's TLS certificate (empty: system)."
    )
    vault_auth: Literal["token", "approle"] = Field(
        "token", description="Vault backend: log in with a token (file or environment variable) or with AppRole."
    )
    vault_token_file: OptionalPath = Field(
        None, description="Vault backend, token auth: absolute path of a 0600 file holding the token."
    )
    vault_token_env: str = Field(
        "", description="Vault backend, token auth: name of an environment variable holding the token (if no file)."
    )
    vault_approle_mount: str = Field("approle", description="Vault backend, AppRole auth: mount path of the method.")
    vault_role_id_file: OptionalPath = Field(
        None, description="Vault backend, AppRole auth: absolute path of a 0600 file holding the role_id."
    )
    vault_secret_id_file: OptionalPath = Field(
        None, description="Vault backend, AppRole auth: absolute path of a 0600 file holding the secret_id."
    )
    vault_timeout_seconds: float = Field(10.0, gt=0, description="Vault backend: timeout of one request to Vault.")
    vault_renew_before_seconds: int = Field(
        300, ge=0, description="Vault backend: renew a renewable token when less than this many seconds remain."
    )
    vault_kv_mount: str = Field("secret", description="Vault backend: mount path of the KV version 2 engine.")
    vault_kv_prefix: str = Field(
        "hengxin/", description="Vault backend: path prefix of Hengxin's secrets inside the KV mount."
    )

    @field_validator("vault_ca_file", "vault_token_file", "vault_role_id_file", "vault_secret_id_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("vault_url")
    @classmethod
    def _vault_url(cls, value: str) -> str:
        return _check_vault_url(value)


def _check_vault_url(value: str) -> str:
    """Accept an http(s) URL with a host and no user:password part (credentials never go in the file)."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials; use vault_token_file, vault_token_env or AppRole")
    return value


class AlertSettings(Section):
    webhook_url: str = Field("", description="POST each alert as JSON to this URL (optional).")
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="Timeout for the webhook call.")
    syslog_address: str = Field(
        "", description="Send alerts to syslog: a socket path such as /dev/log, or host:port for UDP (optional)."
    )


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["json", "text"] = Field("json", description="Log line format on stdout.")


class I18nSettings(Section):
    default_language: Literal["zh-CN", "en"] = Field(
        "zh-CN", description="Language of error titles and details when Accept-Language does not choose."
    )


class PasswordSettings(Section):
    argon2_time_cost: int = Field(
        2, ge=1, le=20, description="argon2id iterations (t). Default 2 with 19 MiB is OWASP's recommendation."
    )
    argon2_memory_kib: int = Field(
        19456, ge=8, le=4 * 1024 * 1024, description="argon2id memory per hash in KiB (m); 19456 KiB = 19 MiB."
    )
    argon2_parallelism: int = Field(1, ge=1, le=16, description="argon2id lanes (p).")
    min_length: int = Field(10, ge=1, le=128, description="Shortest accepted password, in characters.")
    max_length: int = Field(128, ge=8, le=1024, description="Longest accepted password, in characters.")
    min_character_classes: int = Field(
        3,
        ge=1,
        le=4,
        description="How many of the four classes (lower-case, upper-case, digits, other) a password must use.",
    )
    history: int = Field(
        5, ge=0, le=50, description="A new password must differ from the current one and the last N (0: only current)."
    )
    max_age_days: int = Field(
        90,
        ge=0,
        description="A person's password expires this many days after it was set (0: never). Service accounts and "
        "accounts authenticated by an external directory are exempt.",
    )
    lockout_threshold: int = Field(
        5, ge=1, description="Failed logins of one account within lockout_window_seconds that lock it temporarily."
    )
    lockout_window_seconds: int = Field(900, ge=1, description="Window in which failures of one account are counted.")
    lockout_duration_seconds: int = Field(900, ge=1, description="How long a temporary lockout lasts.")
    lockout_permanent_after: int = Field(
        3,
        ge=1,
        description="The Nth lockout in a row (no successful login in between) is permanent: the account stays "
        "locked until an administrator unlocks it; the ones before it last lockout_duration_seconds.",
    )
    source_threshold: int = Field(
        20, ge=1, description="Failed logins from one source address within source_window_seconds that block it."
    )
    source_window_seconds: int = Field(900, ge=1, description="Window in which failures of one source are counted.")
    source_block_seconds: int = Field(900, ge=1, description="How long a blocked source address stays blocked.")

    @field_validator("argon2_parallelism")
    @classmethod
    def _memory_per_lane(cls, value: int, info: Any) -> int:
        memory = info.data.get("argon2_memory_kib")
        if memory is not None and memory < 8 * value:
            raise ValueError("argon2 needs at least 8 KiB of memory per lane")
        return value


class FederationSettings(Section):
    name: str = Field(
        ..., pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Name used in users' auth_source ('ldap:<name>')."
    )
    url: str = Field(..., description="LDAP URL of the external directory (ldap://, ldaps://).")
    base_dn: str = Field(..., min_length=1, description="Search base for users in the external directory.")
    user_filter: str = Field(
        "(uid={login})",
        description="Filter finding one user by login for authentication; Active Directory: (sAMAccountName={login}).",
    )
    import_filter: str = Field(
        "(objectClass=inetOrgPerson)",
        description="Filter selecting the users to import; Active Directory: "
        "(&(objectCategory=person)(objectClass=user)).",
    )
    group_filter: str = Field(
        "(|(objectClass=groupOfNames)(objectClass=group))",
        description="Filter selecting the groups whose members are imported with `directory import --groups`.",
    )
    bind_dn: str = Field("", description="DN to search with (empty: anonymous).")
    bind_password_secret: str = Field("", description="Secret store name of bind_dn's password.")
    start_tls: bool = Field(False, description="Upgrade an ldap:// connection with StartTLS.")
    ca_file: OptionalPath = Field(None, description="Absolute path of the CA bundle for the server certificate.")
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Attribute names by user field (login, display_name, email, phone, department, given_name, "
        "surname, certificates); Active Directory: login = 'sAMAccountName'.",
    )

    @field_validator("ca_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("user_filter")
    @classmethod
    def _login_placeholder(cls, value: str) -> str:
        if "{login}" not in value:
            raise ValueError("must contain {login}")
        return value


class DirectorySettings(Section):
    enabled: bool = Field(
        False, description="Publish the directory to the OpenLDAP server below (the embedded default has none)."
    )
    ldap_url: str = Field("", description="LDAP URL of the server Hengxin publishes to (ldap:// or ldaps://).")
    base_dn: str = Field("dc=gov,dc=example", description="Suffix of the published tree.")
    bind_dn: str = Field("cn=hengxin-sync,dc=gov,dc=example", description="The sync identity Hengxin writes as.")
    bind_password_secret: str = Field(
        "ldap-sync-password", description="Name of the secret (in the secret store) holding bind_dn's password."
    )
    start_tls: bool = Field(False, description="Upgrade an ldap:// connection with StartTLS (recommended).")
    ca_file: OptionalPath = Field(
        None, description="Absolute path of the CA bundle for the LDAP server certificate (empty: system trust)."
    )
    network_timeout_seconds: float = Field(5.0, gt=0, description="Timeout for connecting to the LDAP server.")
    operation_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one LDAP operation.")
    publish_interval_seconds: float = Field(
        5.0, gt=0, description="How often the publisher retries pending changes (it also runs right after a change)."
    )
    publish_batch_size: int = Field(200, ge=1, description="Changes applied per publisher run.")
    alert_after_attempts: int = Field(
        5, ge=1, description="Raise an alert when one change has failed this many times (e.g. the server is down)."
    )
    max_attempts: int = Field(
        20,
        ge=1,
        description="A change refused this many times for a reason other than an unreachable server is set aside "
        "(status failed, alerted) so later changes can proceed; `hengxin directory sync --full` repairs it.",
    )
    federation: list[FederationSettings] = Field(
        default_factory=list, description="External directories users can be imported from and authenticated by."
    )

    @field_validator("ca_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("federation")
    @classmethod
    def _unique_names(cls, value: list[FederationSettings]) -> list[FederationSettings]:
        names = [item.name for item in value]
        if len(names) != len(set(names)):
            raise ValueError("federation names must be unique")
        return value


class BackupRepositorySettings(Section):
    """One restic repository: ``[[backup.repositories]]``."""

    name: str = Field(
        ..., pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Short name used by jobs, the CLI and the API."
    )
    url: str = Field(
        ...,
        min_length=1,
        description="restic repository location: an absolute local path, sftp:user@host:/path, "
        "s3:https://host/bucket/path ... Never put credentials in it: use password_secret and extra_env_secret.",
    )
    password_secret: str = Field(
        ..., min_length=1, description="Name of the secret (in the secret store) holding the repository password."
    )
    role: Literal["primary", "copy"] = Field(
        "primary",
        description="'primary': jobs back up into it; 'copy': filled with `restic copy` after each successful "
        "backup (off-site copy, 3-2-1).",
    )
    extra_env_secret: str = Field(
        "",
        description="Name of a secret holding KEY=VALUE lines added to restic's environment for this repository "
        "(for example AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of an S3 bucket). Empty: none.",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="restic extended options passed as -o name=value, e.g. {\"sftp.command\" = \"ssh -p 2222 "
        "-i /etc/hengxin/backup_ed25519 backup@host -s sftp\"}. Must not hold secrets (they show in ps).",
    )

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        import re

        if re.search(r"://[^/@\s]+:[^/@\s]*@", value):
            raise ValueError("must not contain a password; use password_secret and extra_env_secret")
        if "\n" in value or "\x00" in value:
            raise ValueError("must be one line")
        return value

    @field_validator("options")
    @classmethod
    def _option_names(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for name, option in value.items():
            if not re.fullmatch(r"[a-z0-9]+(\.[a-z0-9-]+)+", name):
                raise ValueError(f"{name!r} is not a restic option name (like sftp.command)")
            if "\n" in option or "\x00" in option:
                raise ValueError(f"option {name!r} must be one line")
        return value


class BackupRetentionSettings(Section):
    """How many snapshots ``forget --prune`` keeps after each successful backup (unset: no limit of that kind)."""

    keep_last: int | None = Field(None, ge=1, description="Keep the newest N snapshots.")
    keep_hourly: int | None = Field(None, ge=1, description="Keep the newest snapshot of each of the last N hours.")
    keep_daily: int | None = Field(None, ge=1, description="Keep the newest snapshot of each of the last N days.")
    keep_weekly: int | None = Field(None, ge=1, description="Keep the newest snapshot of each of the last N weeks.")
    keep_monthly: int | None = Field(None, ge=1, description="Keep the newest snapshot of each of the last N months.")
    keep_yearly: int | None = Field(None, ge=1, description="Keep the newest snapshot of each of the last N years.")

    def policy(self) -> dict[str, int]:
        """The keep_* values that are set."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


class BackupJobSettings(Section):
    """One backup job: ``[[backup.jobs]]``."""

    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Job name (CLI, API, metrics).")
    sources: list[str] = Field(
        default_factory=list,
        description="Names of the backup sources to include (database, keys, audit, config, paths, and those "
        "registered by other components such as ldap). Empty: every registered source.",
    )
    repository: str = Field(..., description="Name of the primary repository the job backs up into.")
    copy_to: list[str] | None = Field(
        None, description="Copy repositories filled after each successful backup. Unset: every 'copy' repository."
    )
    schedule: str = Field(
        "",
        description="When `hengxin serve` runs the job: a 5-field cron expression (minute hour day month weekday) "
        "in [instance] timezone, or @daily/@hourly/@weekly/@monthly. Empty: only `hengxin backup run` or the API.",
    )
    retention: BackupRetentionSettings = Field(
        default_factory=lambda: BackupRetentionSettings(keep_daily=7, keep_weekly=5, keep_monthly=12),
        description="Snapshots kept by `forget --prune` after each successful backup, in every repository.",
    )
    check_schedule: str = Field(
        "", description="When `hengxin serve` checks the job's repositories (cron). Empty: no scheduled check."
    )
    read_data_subset_days: int = Field(
        0,
        ge=0,
        le=366,
        description="N > 0: each scheduled check also reads 1/N of the data (`check --read-data-subset d/N`, "
        "d = day number), so all data is read back over N days. 0: check the structure only.",
    )
    timeout_seconds: float = Field(6 * 3600.0, gt=0, description="Longest time one restic command of the job may take.")


class BackupSettings(Section):
    """Scheduled, encrypted, verified restic backups (see docs/backup.md)."""

    restic_binary: str = Field("restic", description="The restic program (name on PATH or absolute path).")
    pg_dump_binary: str = Field(
        "",
        description="pg_dump for PostgreSQL databases. Empty: the newest /usr/lib/postgresql/*/bin/pg_dump, "
        "else pg_dump on PATH.",
    )
    state_dir: OptionalPath = Field(
        None,
        description="Absolute path for staging dumps, previous manifests and restic's cache. Empty: data_dir/backup.",
    )
    extra_paths: list[Path] = Field(
        default_factory=list, description="Further absolute paths the 'paths' source backs up as they are."
    )
    scheduler: bool = Field(True, description="Run scheduled jobs and checks inside `hengxin serve`.")
    scheduler_interval_seconds: float = Field(
        15.0, gt=0, le=60, description="How often the scheduler looks for due jobs (under a minute)."
    )
    lease_seconds: int = Field(
        600,
        ge=10,
        description="A node running a job holds a database lease, renewed while it runs; another node may take "
        "over a job whose lease has not been renewed for this long.",
    )
    repositories: list[BackupRepositorySettings] = Field(
        default_factory=list, description="restic repositories: [[backup.repositories]] tables."
    )
    jobs: list[BackupJobSettings] = Field(default_factory=list, description="Backup jobs: [[backup.jobs]] tables.")

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("extra_paths")
    @classmethod
    def _absolute_paths(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.is_absolute():
                raise ValueError(f"{path} must be an absolute path")
        return value

    @field_validator("repositories")
    @classmethod
    def _unique_repositories(cls, value: list[BackupRepositorySettings]) -> list[BackupRepositorySettings]:
        names = [repository.name for repository in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"two repositories are named {duplicates[0]!r}")
        return value

    @field_validator("jobs")
    @classmethod
    def _references(cls, value: list[BackupJobSettings], info: Any) -> list[BackupJobSettings]:
        roles = {repository.name: repository.role for repository in info.data.get("repositories") or ()}
        names: set[str] = set()
        for job in value:
            if job.name in names:
                raise ValueError(f"two jobs are named {job.name!r}")
            names.add(job.name)
            if roles.get(job.repository) != "primary":
                raise ValueError(f"job {job.name!r}: repository {job.repository!r} is not a configured primary")
            for target in job.copy_to or ():
                if roles.get(target) != "copy":
                    raise ValueError(f"job {job.name!r}: copy_to {target!r} is not a configured copy repository")
        return value


class CASettings(Section):
    """The certificate authority: hierarchy defaults, CRL and OCSP timing, expiry alerts (see docs/ca.md)."""

    algorithm: str = Field(
        "ec-p256",
        description="Key algorithm of CAs created without an explicit choice (`hengxin init`, `hengxin ca create`): "
        "ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519.",
    )
    root_algorithm: str = Field(
        "",
        description="Key algorithm of the root CA created by `hengxin init`. Empty: the same as algorithm "
        "(rsa-2048 is not allowed for a root: use rsa-3072 or larger).",
    )
    root_name: str = Field("root", description="Name of the root CA created by `hengxin init` (used in URLs).")
    issuing_name: str = Field(
        "issuing", description="Name of the issuing CA created by `hengxin init`; the default CA for issuance."
    )
    organisation: str = Field("Hengxin", description="Organisation (O) in the subject of CAs created by Hengxin.")
    country: str = Field("CN", description="Country (C, two capital letters) in the subject of CAs.")
    end_entity_algorithm: str = Field(
        "ec-p256",
        description="Key algorithm of server-generated and custodial keys when the request names none "
        "(the profile's first allowed type if this one is not allowed).",
    )
    profiles_file: OptionalPath = Field(
        None,
        description="Absolute path of a YAML file overriding or adding certificate profiles "
        "({profile: {field: value}}, see ca/profiles.yaml). Empty: the shipped profiles only.",
    )
    crl_validity_hours: int = Field(
        24, ge=1, le=24 * 31, description="nextUpdate of a CRL is this many hours after its thisUpdate."
    )
    crl_min_interval_seconds: int = Field(
        60,
        ge=0,
        description="Revocations are collected and a CA's CRL is rebuilt at most this often "
        "(a new CRL is always published before nextUpdate).",
    )
    crl_check_interval_seconds: float = Field(
        5.0, gt=0, le=300, description="How often `hengxin serve` looks for CRLs to publish."
    )
    crl_keep: int = Field(5, ge=1, description="How many CRLs per CA are kept in the database (the newest).")
    ocsp_validity_minutes: int = Field(
        240, ge=5, le=7 * 24 * 60, description="nextUpdate of an OCSP response is this many minutes after thisUpdate."
    )
    ocsp_max_age_seconds: int = Field(
        300,
        ge=0,
        description="Cache-Control max-age of OCSP responses to GET requests (never beyond nextUpdate).",
    )
    ocsp_cache_entries: int = Field(
        100_000, ge=0, description="Pre-signed OCSP responses kept in memory per process (0: no cache)."
    )
    ocsp_responder_renew_days: int = Field(
        2,
        ge=1,
        description="Renew a CA's OCSP responder certificate when fewer than this many days of validity remain.",
    )
    expiry_warning_days: int = Field(
        30, ge=1, description="Raise an alert for certificates (including the platform's own) expiring this soon."
    )
    background_jobs: bool = Field(
        True,
        description="Run the CRL publisher and maintenance (responder renewal, expiry alerts) inside `hengxin serve`. "
        "Off only for instances that must not publish, such as disaster-recovery sandboxes.",
    )
    maintenance_interval_seconds: float = Field(
        3600.0,
        ge=10,
        description="How often `hengxin serve` renews OCSP responder certificates; expiry alerts run once a day.",
    )

    @field_validator("profiles_file")
    @classmethod
    def _absolute_profiles_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str) -> str:
        if len(value) != 2 or not value.isascii() or not value.isupper():
            raise ValueError("must be two capital letters (ISO 3166), e.g. CN")
        return value


class TSASettings(Section):
    """The RFC 3161 timestamp authority: policy, accuracy, clock discipline, recording (see docs/timestamp.md)."""

    default_policy: str = Field(
        "1.3.6.1.4.1.32473.2.1",
        description="TSA policy OID written into tokens whose request names none. The default lies under the "
        "documentation enterprise number 32473 (RFC 5612): every deployment must use an OID of its own arc.",
    )
    accepted_policies: list[str] = Field(
        default_factory=list,
        description="Further policy OIDs a request may ask for (reqPolicy); others get unacceptedPolicy.",
    )
    hash_algorithms: list[Literal["sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"]] = (
        Field(
            ["sha256", "sha384", "sha512"],
            description="Message-imprint hashes accepted in requests; others (and always SHA-1, MD5) get badAlg.",
        )
    )
    accuracy_seconds: float = Field(
        1.0,
        ge=0.000001,
        le=3600,
        description="Accuracy declared in every token, in seconds (microsecond steps). The clock must stay "
        "within it, or the TSA answers timeNotAvailable.",
    )
    include_tsa_name: bool = Field(False, description="Write the TSA certificate's subject into the TSTInfo tsa field.")
    ntp_servers: list[str] = Field(
        default_factory=list,
        description="NTP servers (host, host:port, [v6]:port) the clock is checked against. Required in "
        "production; empty in development means the system clock is trusted unchecked (a warning is logged).",
    )
    ntp_poll_interval_seconds: float = Field(
        16.0, ge=1, le=3600, description="How often `hengxin serve` asks the NTP servers."
    )
    ntp_timeout_seconds: float = Field(1.0, gt=0, le=10, description="How long one NTP query may take.")
    max_clock_offset_seconds: float = Field(
        0.0,
        ge=0,
        description="Largest tolerated clock offset (plus its measurement error) in seconds; 0: the declared "
        "accuracy. Must not exceed accuracy_seconds.",
    )
    max_silence_seconds: float = Field(
        120.0,
        gt=0,
        description="Without any NTP answer for this long after the last good one, the clock counts as "
        "unchecked and the TSA answers timeNotAvailable.",
    )
    require_authentication: bool = Field(
        False,
        description="Require a bearer token with the timestamps.issue permission on POST /tsa (default: public).",
    )
    batch_window_ms: float = Field(
        2.0,
        ge=0,
        le=50,
        description="Tokens are recorded and audited in groups: a group collects for this many milliseconds "
        "before it is committed; each token is returned only after its group committed.",
    )
    batch_max_size: int = Field(256, ge=1, le=5000, description="Largest number of tokens committed together.")
    certificate_common_name: str = Field(
        "Hengxin Time-Stamping Authority",
        min_length=1,
        max_length=64,
        description="CN of the TSA certificate that `hengxin init` requests from the issuing CA.",
    )
    certificate_organisation: str = Field(
        "", max_length=64, description="O of the TSA certificate. Empty: [ca] organisation."
    )
    key_algorithm: Literal["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"] = Field(
        "ec-p256",
        description="Algorithm of the TSA key (kept in the key store). OpenSSL 3.0 cannot verify Ed25519 tokens: "
        "prefer EC or RSA.",
    )
    renew_before_days: int = Field(
        30, ge=1, description="`hengxin serve` renews the TSA certificate when fewer days than this remain."
    )

    @field_validator("default_policy", "accepted_policies")
    @classmethod
    def _object_identifiers(cls, value: str | list[str]) -> str | list[str]:
        import re

        for oid in [value] if isinstance(value, str) else value:
            if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", oid):
                raise ValueError(f"{oid!r} is not a dotted object identifier")
        return value

    @field_validator("hash_algorithms")
    @classmethod
    def _some_hash(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one hash algorithm must be accepted")
        return value

    @field_validator("accuracy_seconds")
    @classmethod
    def _microsecond_steps(cls, value: float) -> float:
        if abs(value * 1_000_000 - round(value * 1_000_000)) > 1e-6:
            raise ValueError("must be a whole number of microseconds")
        return value

    @field_validator("max_clock_offset_seconds")
    @classmethod
    def _within_accuracy(cls, value: float, info: Any) -> float:
        accuracy = info.data.get("accuracy_seconds")
        if accuracy is not None and value > accuracy:
            raise ValueError(f"must not exceed accuracy_seconds ({accuracy:g}): the tokens would overstate it")
        return value

    @field_validator("ntp_servers")
    @classmethod
    def _server_addresses(cls, value: list[str]) -> list[str]:
        import re

        pattern = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?"
        for server in value:
            if not re.fullmatch(pattern, server.strip()):
                raise ValueError(f"{server!r} is not host, host:port or [v6]:port")
        return value


class AuthSettings(Section):
    """Login, sessions and tokens (docs/auth.md)."""

    access_token_minutes: int = Field(
        5, ge=1, le=60, description="Lifetime of a JWT access token; relying parties that only check the "
        "signature accept it until it expires, so keep it short."
    )
    session_idle_minutes: int = Field(
        30, ge=1, description="A session ends when its refresh token is not used for this long."
    )
    session_absolute_hours: int = Field(
        8, ge=1, description="A session ends this long after the login, whatever its activity."
    )
    client_token_minutes: int = Field(
        5, ge=1, le=60, description="Lifetime of an access token issued by the client-credentials grant."
    )
    audience: str = Field("hengxin", min_length=1, description="The `aud` claim of access tokens.")
    client_certificate_header: str = Field(
        "X-SSL-Client-Cert",
        min_length=1,
        description="Header carrying the URL-escaped PEM client certificate from the TLS proxy "
        "(nginx `$ssl_client_escaped_cert`); honoured only from [server] trusted_proxies.",
    )
    totp_issuer: str = Field("Hengxin", min_length=1, description="Issuer shown by authenticator apps.")
    totp_max_failures: int = Field(
        5, ge=1, description="Wrong one-time codes in a row after which the second factor is refused for "
        "totp_lockout_seconds."
    )
    totp_lockout_seconds: int = Field(900, ge=1, description="How long the second factor is refused.")
    step_up_max_age_seconds: int = Field(
        300, ge=10, description="Default age limit of the last strong authentication for step-up routes."
    )
    initial_admin_login: str = Field(
        "admin",
        description="Login of the system administrator `hengxin init` creates (password in the secret "
        "`admin-password`); empty: create none.",
    )


class DRSettings(Section):
    """Disaster-recovery drills (docs/dr.md)."""

    repository: str = Field(
        "", description="Repository drills restore from (empty: the primary repository of the first backup job)."
    )
    schedule: str = Field(
        "", description="Cron expression for scheduled drills in [instance] timezone (empty: no scheduled drills)."
    )
    scheduler: bool = Field(True, description="Run scheduled drills inside `hengxin serve` (one node per slot).")
    scheduler_interval_seconds: float = Field(
        30.0, gt=0, description="How often the drill scheduler looks at the clock."
    )
    work_dir: OptionalPath = Field(None, description="Directory for sandboxes (mode 0700). Empty: data_dir/dr.")
    secrets_dir: OptionalPath = Field(
        None,
        description="Operator-supplied directory holding the secrets that are not in backups (master passphrase ...), "
        "one file per secret name. Empty: only --secrets-file and the live secret store.",
    )
    live_secrets: bool = Field(
        True, description="Fall back to the live secret store for the secrets a drill needs (master passphrase ...)."
    )
    rto_target_seconds: float = Field(900.0, gt=0, description="Recovery time objective a drill is compared with.")
    rpo_target_seconds: float = Field(
        26 * 3600.0, gt=0, description="Recovery point objective: the oldest acceptable snapshot age at drill time."
    )
    overdue_days: float = Field(
        92.0, gt=0, description="Raise dr.overdue when the last passed drill is older than this (quarterly by default)."
    )
    check_read_data: bool = Field(
        True, description="Run `restic check --read-data` before restoring, so a damaged pack is named."
    )
    start_timeout_seconds: float = Field(60.0, gt=0, description="Longest wait for the sandbox to become ready.")
    step_timeout_seconds: float = Field(3600.0, gt=0, description="Longest time one restic or database step may take.")
    language: Literal["zh-CN", "en"] = Field("zh-CN", description="Language of the human drill report.")
    report_dir: OptionalPath = Field(
        None, description="Where report files (JSON, HTML, PDF) are written as well. Empty: data_dir/dr/reports."
    )


class SigningSealSettings(Section):
    """One organisation seal (电子印章): ``[[signing.seals]]``; the rule decides who may sign with it."""

    name: str = Field(
        ..., pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Short name callers choose the seal by."
    )
    certificate: str = Field(
        ...,
        min_length=1,
        description="The seal's organisation-seal certificate with a custodial key: its id in the CA, or its "
        "serial number in hexadecimal (`hengxin sign seal-create` prints it).",
    )
    allowed_users: list[str] = Field(
        default_factory=list, description="Logins (people or service accounts) allowed to sign with this seal."
    )
    allowed_roles: list[str] = Field(
        default_factory=list, description="Roles whose holders are allowed to sign with this seal."
    )
    allowed_tokens: list[str] = Field(
        default_factory=list, description="Names of API tokens (automation) allowed to sign with this seal."
    )


class SigningSettings(Section):
    """Document signing: limits, defaults and organisation seals (docs/signing.md)."""

    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest document (PDF or CMS content) accepted for signing or "
        "verification, in bytes; [server] upload_max_body_bytes bounds the whole request body as well."
    )
    max_pages: int = Field(2000, ge=1, description="Most pages a PDF to sign or verify may have.")
    default_level: Literal["B-B", "B-T", "B-LT", "B-LTA"] = Field(
        "B-T", description="PAdES level used when a request names none (CMS: B-B or B-T, B-LT/B-LTA mean B-T)."
    )
    keep_signed_files: bool = Field(
        False, description="Keep every signed output in the database next to its record (off: only hashes)."
    )
    step_up_max_age_seconds: int = Field(
        300, ge=10, le=3600, description="A personal signature needs a password+TOTP or certificate login at most "
        "this many seconds old."
    )
    seals: list[SigningSealSettings] = Field(
        default_factory=list, description="Organisation seals: [[signing.seals]] tables."
    )

    @field_validator("seals")
    @classmethod
    def _unique_seal_names(cls, value: list[SigningSealSettings]) -> list[SigningSealSettings]:
        names = [seal.name for seal in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"seal names must be unique: {', '.join(duplicates)}")
        return value


_DEFAULT_APPROVAL: dict[str, str] = {
    "person-auth": "auto", "organisation-seal": "two", "sub-ca": "two", "tsa": "two",
}


class RASettings(Section):
    """The registration authority: certificate requests, their approval, binding to the directory (docs/ca.md)."""

    approval: dict[str, Literal["auto", "one", "two"]] = Field(
        default_factory=lambda: dict(_DEFAULT_APPROVAL),
        description="Approval rule per profile: auto (issued at once, for an active user), one (one approver) or "
        "two (two different approvers, four eyes). Entries given here replace the defaults one by one "
        "(person-auth auto; organisation-seal, sub-ca, tsa two); other profiles use default_approval.",
    )
    default_approval: Literal["auto", "one", "two"] = Field(
        "one", description="Approval rule of profiles not named in approval."
    )
    person_profiles: list[str] = Field(
        default_factory=lambda: ["person-auth", "person-sign"],
        description="Profiles whose subject is a person: CN, O/OU and the e-mail SAN come from the directory entry.",
    )
    subject_source: Literal["directory", "refuse_mismatch"] = Field(
        "directory", description="For person profiles: directory replaces the CSR's subject with the directory's; "
        "refuse_mismatch refuses a CSR whose subject or e-mail names disagree with the directory "
        "(ra.subject_mismatch).",
    )
    revoke_on_disable: bool = Field(True, description="Revoke a user's certificates when the user is disabled.")
    revoke_reason_on_disable: Literal["affiliationChanged", "cessationOfOperation"] = Field(
        "affiliationChanged", description="RFC 5280 reason of those revocations."
    )
    sweep_interval_seconds: float = Field(
        3600.0,
        ge=10,
        description="How often `hengxin serve` revokes what a crash between a user's disabling and the "
        "revocation of their certificates may have left valid.",
    )

    @field_validator("approval", mode="before")
    @classmethod
    def _approval_over_defaults(cls, value: Any) -> Any:
        # Naming one profile must not silently drop the four-eyes defaults of the others.
        return {**_DEFAULT_APPROVAL, **value} if isinstance(value, dict) else value


class Settings(BaseSettings):
    """All of Hengxin's settings.  ``config_path`` records where they were read from."""

    model_config = SettingsConfigDict(
        env_prefix="HENGXIN_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    instance: InstanceSettings = Field(default_factory=InstanceSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    keys: KeySettings = Field(default_factory=KeySettings)
    secrets: SecretSettings = Field(default_factory=SecretSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    i18n: I18nSettings = Field(default_factory=I18nSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    passwords: PasswordSettings = Field(default_factory=PasswordSettings)
    ca: CASettings = Field(default_factory=CASettings)
    tsa: TSASettings = Field(default_factory=TSASettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    dr: DRSettings = Field(default_factory=DRSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    ra: RASettings = Field(default_factory=RASettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values are passed as init arguments by load_settings(); the
        # environment wins over them, so environment goes first.
        return (env_settings, init_settings)

    # Derived paths -----------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.instance.data_dir

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'hengxin.db'}"

    @property
    def database_admin_url(self) -> str:
        return self.database.admin_url or self.database_url

    @property
    def key_directory(self) -> Path:
        return self.keys.directory or self.data_dir / "keys"

    @property
    def secret_directory(self) -> Path:
        return self.secrets.directory or self.data_dir / "secrets"

    @property
    def audit_export_dir(self) -> Path:
        return self.audit.export_dir or self.data_dir / "audit-exports"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.instance.timezone)


def _describe_validation_error(error: ValidationError, source: str) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown configuration key '{key}'")
        else:
            parts.append(f"'{key}': {item['msg']}")
    return f"{source}: " + "; ".join(parts)


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else (base / path)


def load_settings(path: str | Path | None = None, *, overrides: dict[str, Any] | None = None) -> Settings:
    """Read settings from ``path`` (or ``$HENGXIN_CONFIG``, or ``var/hengxin.toml`` if it exists).

    Raises :class:`ConfigurationError` naming the file and every bad key.
    A path given explicitly must exist; the default path may be absent.
    """
    explicit = path is not None or CONFIG_ENV in os.environ
    chosen = Path(path) if path is not None else Path(os.environ.get(CONFIG_ENV, str(DEFAULT_CONFIG_PATH)))
    data: dict[str, Any] = {}
    base = Path.cwd()
    if chosen.exists():
        try:
            with chosen.open("rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as e:
            raise ConfigurationError(f"{chosen}: not valid TOML: {e}") from e
        base = chosen.resolve().parent
    elif explicit:
        raise ConfigurationError(f"configuration file {chosen} does not exist", detail_zh=f"配置文件 {chosen} 不存在")
    if overrides:
        data = _merge(data, overrides)
    try:
        settings = Settings(**data)
    except ValidationError as e:
        raise ConfigurationError(_describe_validation_error(e, str(chosen))) from e
    return resolve_paths(settings, base, config_path=chosen if chosen.exists() else None)


def resolve_paths(settings: Settings, base: Path, *, config_path: Path | None = None) -> Settings:
    """Make every relative path in ``settings`` absolute against ``base``."""
    data_dir = _resolve(settings.instance.data_dir, base)
    assert data_dir is not None
    settings.instance.data_dir = data_dir.resolve()
    settings.keys.directory = _resolve(settings.keys.directory, base)
    settings.secrets.directory = _resolve(settings.secrets.directory, base)
    settings.audit.export_dir = _resolve(settings.audit.export_dir, base)
    object.__setattr__(settings, "_config_path", config_path)
    return settings


def config_path_of(settings: Settings) -> Path | None:
    return getattr(settings, "_config_path", None)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def check_production_safety(settings: Settings) -> list[str]:
    """Problems that make ``settings`` unsafe for production (empty in development)."""
    if settings.instance.environment != "production":
        return []
    problems = []
    if settings.keys.backend == "file" and settings.secrets.backend == "file":
        secret_dir = settings.secret_directory.resolve()
        if secret_dir.is_relative_to(settings.data_dir.resolve()):
            problems.append(
                "the master passphrase is kept in data_dir next to the keys it protects: "
                "set [secrets] directory outside data_dir (or use Vault)"
            )
    if settings.instance.base_url.startswith("http://127.") or "localhost" in settings.instance.base_url:
        problems.append("[instance] base_url points at this machine; certificates would carry unreachable URLs")
    return problems


def sample_config() -> str:
    """A complete, commented TOML file with every option at its default.

    Options that are lists of tables (``[[backup.repositories]]`` ...) are
    shown empty, followed by a commented example table listing every field.
    """
    lines = [
        "# Hengxin configuration. Every option is shown at its default.",
        "# Environment variables override the file: HENGXIN_<SECTION>__<KEY>, e.g. HENGXIN_SERVER__PORT=8001.",
        "",
    ]
    examples: list[str] = []
    for name, field in Settings.model_fields.items():
        section_type = field.annotation
        assert isinstance(section_type, type) and issubclass(section_type, BaseModel)
        lines.append(f"[{name}]")
        lines.extend(_section_lines(name, section_type, examples))
        lines.append("")
    return "\n".join(lines + examples)


def _table_item_type(annotation: Any) -> type[BaseModel] | None:
    """The model of a ``list[Model]`` option, else None."""
    import typing

    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (None,)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


def _section_lines(path: str, model: type[BaseModel], examples: list[str], *, commented: bool = False) -> list[str]:
    prefix = "# " if commented else ""
    out: list[str] = []
    for key, sub in model.model_fields.items():
        if sub.description:
            out.append(f"# {sub.description}")
        item_type = _table_item_type(sub.annotation)
        if item_type is not None and not commented:
            out.append(f"{key} = []  # see the [[{path}.{key}]] example at the end")
            examples.append(f"# Example [[{path}.{key}]] table (one per entry):")
            examples.append(f"# [[{path}.{key}]]")
            examples.extend(_section_lines(f"{path}.{key}", item_type, examples, commented=True))
            examples.append("")
            continue
        if sub.is_required():
            out.append(f"{prefix}{key} = ...  # required")
            continue
        default = sub.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            out.append(f"# [{path}.{key}] with these fields:")
            out.extend(_section_lines(f"{path}.{key}", type(default), examples, commented=True))
            continue
        if default is None and commented:
            out.append(f"{prefix}{key} = ...  # optional, unset by default")
            continue
        out.append(f"{prefix}{key} = {_toml_value(default)}")
    return out


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Path):
        return _toml_value(str(value))
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
