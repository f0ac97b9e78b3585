"""The ``hengxin`` command line: another front door to the same platform.

Errors are turned into one readable line on stderr and an exit code in one
place (:func:`main`); no command prints a traceback for an expected failure.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from api.platform import ADMIN_TOKEN_SECRET, create_api_token, initialise, open_platform
from core.clock import isoformat_utc
from core.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, Settings, load_settings, sample_config
from core.errors import Category, ConfigurationError, HengxinError, InvalidInput
from core.logging import configure_logging
from core.store import build_engine, migrate, pending_migrations

EXIT_CODES = {
    Category.CONFIGURATION: 78,  # EX_CONFIG
    Category.UNAVAILABLE: 69,  # EX_UNAVAILABLE
}

app = typer.Typer(
    name="hengxin",
    help="Hengxin 恒信: unified trust platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show and check configuration.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify and export the audit log.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
keys_app = typer.Typer(help="Key store.", no_args_is_help=True)
escrow_app = typer.Typer(help="Split restore secrets among custodians (m of n) and recover them.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(keys_app, name="keys")
app.add_typer(escrow_app, name="escrow")

# Sub-command groups registered by the domain packages' CLI modules in api/.
_state: dict[str, Any] = {"config": None}


def settings() -> Settings:
    return load_settings(_state["config"])


def _config_option(value: Path | None) -> None:
    if value is not None:
        _state["config"] = value


@app.callback()
def _root(
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar=CONFIG_ENV, help=f"Configuration file (default {DEFAULT_CONFIG_PATH})."
    ),
    log_level: str = typer.Option("ERROR", "--log-level", help="Log level for this command (logs go to stderr)."),
) -> None:
    _state["config"] = config
    configure_logging(log_level.upper(), "text", stream=sys.stderr)


def fail(error: HengxinError) -> NoReturn:
    raise error


# -- init / serve -----------------------------------------------------------------------------------


def _keys_section(
    keys: str, *, module: Path | None, token_label: str | None, pin_file: Path | None,
    vault_url: str | None, vault_token_file: Path | None,
) -> str:
    """The ``[keys]`` section ``hengxin init --keys`` writes; raises ConfigurationError naming what is missing."""
    if keys == "file":
        return '\n[keys]\nbackend = "file"\n'
    if keys == "pkcs11":
        missing = [name for name, value in (("--pkcs11-token-label", token_label), ("--pkcs11-pin-file", pin_file))
                   if not value]
        if missing:
            raise ConfigurationError(
                "--keys pkcs11 needs " + " and ".join(missing)
                + " (the token's label, and a file holding its user PIN, which init puts in the secret store)"
            )
        lines = ['backend = "pkcs11"', f"pkcs11_token_label = {json.dumps(token_label)}"]
        if module is not None:
            lines.append(f"pkcs11_module = {json.dumps(str(module.absolute()))}")
        return "\n[keys]\n" + "\n".join(lines) + "\n"
    if keys == "vault":
        missing = [name for name, value in (("--vault-url", vault_url), ("--vault-token-file", vault_token_file))
                   if not value]
        if missing:
            raise ConfigurationError(
                "--keys vault needs " + " and ".join(missing)
                + " (for AppRole, write [keys] yourself: docs/key-custody.md)"
            )
        assert vault_token_file is not None
        lines = ['backend = "vault"', f"vault_url = {json.dumps(vault_url)}", 'vault_auth = "token"',
                 f"vault_token_file = {json.dumps(str(vault_token_file.absolute()))}"]
        return "\n[keys]\n" + "\n".join(lines) + "\n"
    raise ConfigurationError(f"--keys must be file, pkcs11 or vault, not {keys!r}")


@app.command()
def init(
    if_needed: bool = typer.Option(False, "--if-needed", help="Do nothing (exit 0) when already initialised."),
    keys: str | None = typer.Option(None, "--keys", help="Key store backend: file (default), pkcs11, vault."),
    pkcs11_module: Path | None = typer.Option(None, "--pkcs11-module", help="PKCS#11 module (--keys pkcs11)."),
    pkcs11_token_label: str | None = typer.Option(None, "--pkcs11-token-label", help="Token label (--keys pkcs11)."),
    pkcs11_pin_file: Path | None = typer.Option(
        None, "--pkcs11-pin-file", help="File holding the token's user PIN; stored in the secret store (--keys pkcs11)."
    ),
    vault_url: str | None = typer.Option(None, "--vault-url", help="Vault / OpenBao URL (--keys vault)."),
    vault_token_file: Path | None = typer.Option(
        None, "--vault-token-file", help="0600 file holding the Vault token (--keys vault)."
    ),
) -> None:
    """Create a new instance: configuration, master passphrase, keys, database, admin token, CA hierarchy."""
    path = _state["config"] or DEFAULT_CONFIG_PATH
    path = Path(path)
    if not path.exists():
        body = '[instance]\ndata_dir = "."\n'
        if keys:
            body += _keys_section(keys, module=pkcs11_module, token_label=pkcs11_token_label, pin_file=pkcs11_pin_file,
                                  vault_url=vault_url, vault_token_file=vault_token_file)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(body, encoding="utf-8")
        path.chmod(0o600)
        typer.echo(f"wrote configuration {path}")
    current = load_settings(path)
    if keys and current.keys.backend != keys:
        raise ConfigurationError(f"--keys {keys} disagrees with [keys] backend = {current.keys.backend!r} in {path}")
    if pkcs11_pin_file is not None:
        from core.keys.factory import open_secret_store

        try:
            pin = pkcs11_pin_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigurationError(f"cannot read the PIN file {pkcs11_pin_file}: {e.strerror}") from None
        current.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        open_secret_store(current).put(current.keys.pkcs11_pin_secret, pin)
    result = initialise(current)
    if not result.created and if_needed:
        typer.echo(f"instance in {result.data_dir} is already initialised")
        return
    typer.echo(("initialised" if result.created else "already initialised") + f" instance in {result.data_dir}")
    typer.echo(f"audit key fingerprint (SHA-256 of the public key): {result.audit_key_fingerprint}")
    for key, value in result.details.items():
        typer.echo(f"{key}: {value}")
    _print_key_fingerprints(current)
    if result.admin_token_file is not None:
        typer.echo(
            f"administrator API token written to {result.admin_token_file} (mode 0600); "
            "use it as 'Authorization: Bearer <token>'"
        )


def _print_key_fingerprints(settings: Settings) -> None:
    """One line per key in the key store: backend, label, key id and the SHA-256 of its public key."""
    from core.keys.factory import open_keystore, open_secret_store

    store = open_keystore(settings, open_secret_store(settings))
    try:
        for info in sorted(store.list_keys(), key=lambda k: k.label):
            typer.echo(f"key {settings.keys.backend} {info.label} {info.key_id} SHA-256 {info.fingerprint}")
    finally:
        store.close()


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Listen address (default [server] host)."),
    port: int | None = typer.Option(None, help="Listen port (default [server] port)."),
) -> None:
    """Apply pending migrations and serve the API."""
    import uvicorn

    from api.app import create_app

    current = settings()
    configure_logging(current.logging.level, current.logging.format)
    platform = open_platform(current, apply_migrations=True)
    if platform.audit is None:
        platform.close()
        raise ConfigurationError("the instance is not initialised: run `hengxin init` first")
    application = create_app(current, platform)
    bind_host = host or current.server.host
    bind_port = port or current.server.port
    token_file = current.secret_directory / ADMIN_TOKEN_SECRET
    print(f"Hengxin serving on http://{bind_host}:{bind_port}  (API docs: /docs)", flush=True)
    if token_file.exists():
        print(f"administrator API token: {token_file} (mode 0600)", flush=True)
    options: dict[str, Any] = {
        "host": bind_host,
        "port": bind_port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if current.server.workers > 1:
        # Each worker builds its own app and platform from the same file (api/asgi.py); the supervisor holds
        # no keys and no database connection.
        platform.close()
        from api.serve import Supervisor

        config_path = str(Path(_state["config"]).resolve()) if _state["config"] is not None else ""
        print(f"{current.server.workers} worker processes", flush=True)
        options.pop("host"), options.pop("port")
        status = Supervisor(config_path, bind_host, bind_port, current.server.workers, options).run()
        if status:
            raise typer.Exit(status)
        return
    try:
        uvicorn.Server(uvicorn.Config(application, **options)).run()
    finally:
        platform.close()


# -- config -----------------------------------------------------------------------------------------


@config_app.command("sample")
def config_sample() -> None:
    """Print a documented configuration file with every option at its default."""
    typer.echo(sample_config())


@config_app.command("check")
def config_check(path: Path | None = typer.Argument(None, help="File to check (default: --config).")) -> None:
    """Validate a configuration file; exit 0 when it is valid."""
    target = path or _state["config"] or DEFAULT_CONFIG_PATH
    if not Path(target).exists():
        raise ConfigurationError(f"configuration file {target} does not exist")
    from core.config import check_production_safety

    loaded = load_settings(target)
    problems = check_production_safety(loaded)
    if problems:
        raise ConfigurationError("unsafe for production: " + "; ".join(problems))
    typer.echo(
        f"{target}: valid ({loaded.instance.environment}, database {loaded.database_url.split(':')[0]}, "
        f"keys {loaded.keys.backend})"
    )


# -- database --------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (as the schema owner: [database] admin_url when set)."""
    from api.platform import admin_database_password, migration_locations
    from core.keys.factory import open_secret_store

    current = settings()
    engine = build_engine(current.database_admin_url,
                          password=admin_database_password(current, open_secret_store(current)))
    try:
        pending = pending_migrations(engine, migration_locations())
        migrate(engine, migration_locations())
    finally:
        engine.dispose()
    typer.echo(f"applied {len(pending)} migration(s)" if pending else "schema is current")


@db_app.command("grant-app-role")
def db_grant_app_role(role: str = typer.Argument(..., help="PostgreSQL role the service connects as.")) -> None:
    """PostgreSQL: let ROLE read and write every table, but only SELECT and INSERT on the audit log."""
    from api.platform import admin_database_password
    from core.keys.factory import open_secret_store
    from core.store.roles import grant_application_role

    current = settings()
    engine = build_engine(current.database_admin_url,
                          password=admin_database_password(current, open_secret_store(current)))
    try:
        grant_application_role(engine, role)
    finally:
        engine.dispose()
    typer.echo(f"granted application privileges to {role}; audit_records is append-only for it")


# -- audit ----------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    anchor: list[Path] = typer.Option([], "--anchor", help="A checkpoint (JSON line from the logs) to check too."),
) -> None:
    """Verify the hash chain and every signed checkpoint; exit 0 when intact, 1 naming the first bad record."""
    anchors = [_read_anchor(p) for p in anchor]
    platform = open_platform(settings(), alerts_enabled=False)
    try:
        with platform.transaction() as session:
            report = platform.require_audit().verify(session, anchors)
    finally:
        platform.close()
    typer.echo(
        f"audit chain intact: {report.records} records, head {report.head_sequence} "
        f"({report.head_hash[:16]}...), {report.checkpoints} signed checkpoints verified"
    )


def _read_anchor(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{path}: not a checkpoint JSON document") from e
    if isinstance(document, dict) and "audit_checkpoint" in document:
        document = document["audit_checkpoint"]
    if not isinstance(document, dict) or "canonical" not in document or "signature" not in document:
        raise InvalidInput(f"{path}: not a checkpoint JSON document")
    return document


@audit_app.command("export")
def audit_export(
    since: dt.datetime | None = typer.Option(None, help="Only records at or after this time (UTC if no zone)."),
    until: dt.datetime | None = typer.Option(None, help="Only records before this time."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
) -> None:
    """Write audit records as JSON lines."""
    platform = open_platform(settings(), alerts_enabled=False)
    try:
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        count = 0
        with platform.transaction() as session:
            for line in platform.require_audit().export(session, since=_utc(since), until=_utc(until)):
                out.write(line + "\n")
                count += 1
        if output:
            out.close()
            typer.echo(f"exported {count} records to {output}", err=True)
    finally:
        platform.close()


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint at the current head now."""
    platform = open_platform(settings(), alerts_enabled=False)
    try:
        with platform.transaction() as session:
            checkpoint = platform.require_audit().checkpoint(session)
    finally:
        platform.close()
    if checkpoint is None:
        typer.echo("the newest checkpoint already covers the head")
    else:
        typer.echo(json.dumps(checkpoint.to_json(), ensure_ascii=False))


@audit_app.command("prune")
def audit_prune() -> None:
    """Export records older than the retention period to a signed segment file, then delete them."""
    from core.store import session_factory, transaction

    current = settings()
    platform = open_platform(current, alerts_enabled=False)
    engine = platform.admin_engine()
    try:
        with transaction(session_factory(engine)) as session:
            segment = platform.require_audit().prune(
                session, retention_days=current.audit.retention_days, export_dir=current.audit_export_dir
            )
    finally:
        if engine is not platform.engine:
            engine.dispose()
        platform.close()
    if segment is None:
        typer.echo(f"nothing older than {current.audit.retention_days} days")
    else:
        typer.echo(
            f"pruned records {segment['first_sequence']}-{segment['last_sequence']} "
            f"after exporting them to {current.audit_export_dir / segment['file']}"
        )


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# -- tokens and keys --------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="A unique name for the token."),
    permissions: str = typer.Option(..., "--permissions", "-p", help="Space-separated permissions, or '*'."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write the token to (mode 0600)."),
) -> None:
    """Create an API token and write it to a 0600 file (never to the terminal)."""
    from core.secrets import write_private_file

    platform = open_platform(settings(), alerts_enabled=False)
    try:
        token = create_api_token(platform, name, permissions, actor=f"cli:{os.environ.get('USER', 'root')}")
    finally:
        platform.close()
    write_private_file(output, token.encode() + b"\n")
    typer.echo(f"token {name!r} written to {output}")


@keys_app.command("list")
def keys_list() -> None:
    """List the keys in the key store with their fingerprints."""
    platform = open_platform(settings(), alerts_enabled=False)
    try:
        for info in platform.keystore.list_keys():
            typer.echo(
                f"{info.key_id}\t{info.label}\t{info.algorithm.value}\t{isoformat_utc(info.created_at)}\t"
                f"{info.fingerprint}"
            )
    finally:
        platform.close()


# -- escrow -------------------------------------------------------------------------------------------


@escrow_app.command("split")
def escrow_split(
    secret: str = typer.Option(..., "--secret", help="Secret store name, e.g. master-passphrase."),
    threshold: int = typer.Option(..., "--threshold", "-m", help="Shares needed to recover."),
    shares: int = typer.Option(..., "--shares", "-n", help="Shares to make, one per custodian."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Directory for the share files (one 0600 file each)."),
) -> None:
    """Split a secret from the secret store into share files for custodians; the secret is never printed."""
    from core.escrow import split
    from core.keys.factory import open_secret_store
    from core.secrets import write_private_file

    value = open_secret_store(settings()).get(secret)
    made = split(value.encode("utf-8"), threshold, shares)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for share in made:
        path = out_dir / f"{secret}.share-{share.index}-of-{shares}.txt"
        write_private_file(path, (f"# Hengxin escrow share {share.index} of {shares} for {secret!r}; "
                                  f"{threshold} shares recover it.\n{share.encode()}\n").encode())
    typer.echo(f"wrote {shares} shares of {secret!r} to {out_dir} ({threshold} needed to recover); "
               "hand one file to each custodian and delete the rest")


@escrow_app.command("combine")
def escrow_combine(
    files: list[Path] = typer.Argument(..., help="Share files (or files with one share per line)."),
    put_secret: str | None = typer.Option(None, "--put-secret", help="Store the recovered value as this secret."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the recovered value to this 0600 file."),
) -> None:
    """Recover a secret from custodians' shares into the secret store or a 0600 file; never to the terminal."""
    from core.escrow import Share, combine
    from core.keys.factory import open_secret_store
    from core.secrets import write_private_file

    if (put_secret is None) == (output is None):
        raise InvalidInput("give exactly one of --put-secret NAME or --output FILE")
    found = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise InvalidInput(f"cannot read {path}") from e
        found += [Share.decode(line) for line in lines if line.strip() and not line.startswith("#")]
    value = combine(found)
    if put_secret is not None:
        open_secret_store(settings()).put(put_secret, value.decode("utf-8"))
        typer.echo(f"recovered the secret from {len(found)} shares into the secret store as {put_secret!r}")
    else:
        assert output is not None
        write_private_file(output, value)
        typer.echo(f"recovered the secret from {len(found)} shares into {output} (mode 0600)")


# -- domain command groups ------------------------------------------------------------------------


def _register_domain_commands() -> None:
    from api.components import components

    for module in components():
        if hasattr(module, "cli"):
            app.add_typer(module.cli, name=module.CLI_NAME)
        # A component may also add several top-level groups (``hengxin user ...``, ``hengxin role ...``).
        for name, group in getattr(module, "CLI_GROUPS", {}).items():
            app.add_typer(group, name=name)


_register_domain_commands()


# -- entry point ----------------------------------------------------------------------------------


def main() -> None:
    """Run the CLI; expected errors become one line on stderr and a non-zero exit code."""
    # Everything Hengxin writes (database, keys, exports) is private to its user.
    os.umask(0o077)
    try:
        app(prog_name="hengxin")
    except HengxinError as e:
        logging.getLogger("hengxin.cli").debug("command failed", exc_info=True)
        sequence = e.extra.get("sequence")
        suffix = f" (first bad sequence number: {sequence})" if sequence is not None else ""
        print(f"hengxin: error: {e.detail}{suffix} [{e.code}]", file=sys.stderr)
        sys.exit(EXIT_CODES.get(e.category, 1))
    except KeyboardInterrupt:
        print("hengxin: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
