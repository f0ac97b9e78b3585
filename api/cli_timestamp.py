"""``hengxin timestamp ...``: stamp and verify files, show records, check the TSA, renew its certificate.

``stamp`` goes through the same service as ``POST /tsa``: the token is
recorded and audit-logged before it is written out.  Errors surface as the
usual one line ``hengxin: error: ... [timestamp.imprint_mismatch]`` and exit
code (see :func:`api.cli.main`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from api.platform import Platform, open_platform
from core.clock import isoformat_utc
from core.errors import ConfigurationError, InvalidInput
from timestamp.errors import TimestampNotGranted
from timestamp.request import build_request
from timestamp.service import TimestampService

app = typer.Typer(
    help="RFC 3161 timestamps: stamp and verify files, records, the TSA certificate.", no_args_is_help=True
)


@contextmanager
def _service() -> Iterator[tuple[Platform, TimestampService]]:
    from api.cli import settings  # imported here: api.cli imports this module while loading

    platform = open_platform(settings())
    try:
        service = platform.services.get("tsa")
        if not isinstance(service, TimestampService):
            raise ConfigurationError("the timestamp authority is not available: run `hengxin init` first")
        yield platform, service
    finally:
        platform.close()


def _actor() -> str:
    return f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'root'}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}", detail_zh=f"无法读取 {path}") from None


@app.command()
def stamp(
    file: Path = typer.Argument(..., help="The file to timestamp."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the reply (default FILE.tsr)."),
    hash_algorithm: str = typer.Option("sha256", "--hash", help="Message-imprint hash: sha256, sha384, sha512 ..."),
    policy: str | None = typer.Option(None, "--policy", help="Ask for this TSA policy OID."),
) -> None:
    """Timestamp FILE with this platform's TSA; writes the TimeStampResp (DER, like `openssl ts -reply`)."""
    request = build_request(_read(file), hash_algorithm=hash_algorithm, policy=policy, cert_req=True)
    target = output or file.with_name(file.name + ".tsr")
    with _service() as (_platform, service):
        if service.clock_monitor is not None:
            service.clock_monitor.poll()  # no background poll in a command: check the clock now
        answer = service.stamp(request, actor=_actor(), source="cli")
    if not answer.granted:
        raise TimestampNotGranted(
            f"the TSA answered {answer.record.failure}: {answer.record.reason}",
            detail_zh=f"时间戳服务拒绝了请求（{answer.record.failure}）",
        )
    target.write_bytes(answer.der)
    record = answer.record
    assert record.gen_time is not None and record.serial_number is not None
    typer.echo(f"wrote {target}", err=True)
    typer.echo(f"serial:   {record.serial_number:x}")
    typer.echo(f"genTime:  {isoformat_utc(record.gen_time)}")
    typer.echo(f"policy:   {record.policy}")
    typer.echo(f"imprint:  {record.hash_algorithm} {record.message_imprint}")


@app.command()
def verify(
    file: Path = typer.Argument(..., help="The data the token should cover."),
    token: Path = typer.Argument(..., help="The token or TimeStampResp (DER, e.g. FILE.tsr)."),
) -> None:
    """Verify TOKEN over FILE against this platform's root CAs; exit 0 only if it holds."""
    data, token_der = _read(file), _read(token)
    with _service() as (_platform, service):
        verified, stored = service.verify(token_der, data=data)
    typer.echo("Verification: OK")
    typer.echo(f"serial:   {verified.serial_number:x}")
    typer.echo(f"genTime:  {isoformat_utc(verified.gen_time)}")
    typer.echo(f"policy:   {verified.policy}")
    typer.echo(f"TSA:      {verified.tsa_certificate.subject.rfc4514_string()}")
    typer.echo(f"recorded: {'yes, requested by ' + stored.requester if stored else 'no (not issued here)'}")


@app.command()
def show(serial: str = typer.Argument(..., help="Serial number of the token, hexadecimal.")) -> None:
    """Show the record of a token issued here."""
    try:
        value = int(serial.replace(":", "").lower().removeprefix("0x"), 16)
    except ValueError:
        raise InvalidInput("the serial number must be hexadecimal", detail_zh="序列号必须为十六进制") from None
    with _service() as (_platform, service):
        stored = service.get(value)
    typer.echo(f"serial:      {stored.serial_hex}")
    typer.echo(f"genTime:     {isoformat_utc(stored.gen_time)}")
    typer.echo(f"imprint:     {stored.hash_algorithm} {stored.message_imprint}")
    typer.echo(f"policy:      {stored.policy}")
    typer.echo(f"nonce:       {format(stored.nonce, 'x') if stored.nonce is not None else '-'}")
    typer.echo(f"requester:   {stored.requester}")
    typer.echo(f"certificate: {stored.tsa_certificate}")


@app.command()
def status() -> None:
    """Check the clock against the NTP servers now and show the TSA certificate."""
    with _service() as (_platform, service):
        monitor = service.clock_monitor
        if monitor is None:
            typer.echo("clock:       not checked ([tsa] ntp_servers is empty; development only)")
        else:
            clock = monitor.poll()
            offset = f"{clock.offset:+.6f} s" if clock.offset is not None else "unknown"
            typer.echo(f"clock:       {'healthy' if clock.healthy else 'UNHEALTHY'} (offset {offset}): {clock.reason}")
        credentials = service.credentials
        if credentials is None:
            typer.echo("certificate: none (run `hengxin init`)")
        else:
            certificate = credentials.certificate
            typer.echo(f"certificate: {certificate.subject.rfc4514_string()}")
            typer.echo(f"serial:      {certificate.serial_number:x}")
            typer.echo(f"valid until: {isoformat_utc(certificate.not_valid_after_utc)}")
            typer.echo(f"fingerprint: {credentials.fingerprint}")
        typer.echo(f"tokens:      {service.count()} recorded")


@app.command()
def renew(rekey: bool = typer.Option(False, "--rekey", help="Use a new key instead of the current one.")) -> None:
    """Renew the TSA certificate now (running servers switch to it within five minutes)."""
    from api.components.timestamp import renew_certificate

    with _service() as (platform, _service_unused):
        info = renew_certificate(platform, actor=_actor(), rekey=rekey)
    typer.echo(f"TSA certificate {info.serial_hex} valid until {isoformat_utc(info.not_after)}")
    typer.echo(f"fingerprint (SHA-256): {info.fingerprint_sha256}")
