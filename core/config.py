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


class SecretSettings(Section):
    backend: Literal["file", "vault"] = Field("file", description="Where named secrets live.")
    directory: OptionalPath = Field(
        None, description="File backend: one 0600 file per secret. Empty: data_dir/secrets."
    )


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
    """A complete, commented TOML file with every option at its default."""
    lines = [
        "# Hengxin configuration. Every option is shown at its default.",
        "# Environment variables override the file: HENGXIN_<SECTION>__<KEY>, e.g. HENGXIN_SERVER__PORT=8001.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        section_type = field.annotation
        assert isinstance(section_type, type) and issubclass(section_type, BaseModel)
        lines.append(f"[{name}]")
        for key, sub in section_type.model_fields.items():
            if sub.description:
                lines.append(f"# {sub.description}")
            default = sub.get_default(call_default_factory=True)
            lines.append(f"{key} = {_toml_value(default)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Path):
        return _toml_value(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
