"""``hengxin ca ...``: list and create CAs, issue, revoke and renew certificates, publish CRLs, export chains.

Errors surface as the usual one line ``hengxin: error: ... [ca.unknown_ca]``
and exit code (see :func:`api.cli.main`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from api.platform import Platform, open_platform
from ca.certificates import NameConstraints
from ca.service import CAService, IssueRequest
from ca.store import CAInfo, CertificateInfo
from core.clock import isoformat_utc
from core.errors import ConfigurationError, InvalidInput

app = typer.Typer(help="Certificate authorities: hierarchy, issuance, revocation, CRLs.", no_args_is_help=True)


@contextmanager
def _service() -> Iterator[tuple[Platform, CAService]]:
    from api.cli import settings  # imported here: api.cli imports this module while loading

    platform = open_platform(settings(), alerts_enabled=True)
    try:
        service = platform.services.get("ca")
        if not isinstance(service, CAService):
            raise ConfigurationError("the certificate authority is not available: run `hengxin init` first")
        yield platform, service
    finally:
        platform.close()


def _actor() -> str:
    return f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'root'}"


def _write(path: Path | None, data: bytes) -> None:
    if path is None:
        typer.echo(data.decode("ascii"), nl=False)
    else:
        path.write_bytes(data)
        typer.echo(f"wrote {path}", err=True)


def _describe_ca(info: CAInfo) -> list[str]:
    responder = info.ocsp_certificate
    lines = [
        f"name:          {info.name}",
        f"parent:        {info.parent or '(self-signed root)'}",
        f"status:        {info.status}",
        f"subject:       {info.subject}",
        f"serial:        {format(info.serial, 'x')}",
        f"valid:         {isoformat_utc(info.not_before)} .. {isoformat_utc(info.not_after)}",
        f"path length:   {'none' if info.path_length is None else info.path_length}",
        f"fingerprint:   {info.fingerprint_sha256}",
        f"CRL number:    {info.crl_number}",
    ]
    if responder is not None:
        lines.append(f"OCSP responder: {format(responder.serial_number, 'x')} until "
                     f"{isoformat_utc(responder.not_valid_after_utc)}")
    return lines


def _describe_certificate(info: CertificateInfo) -> list[str]:
    lines = [
        f"id:            {info.id}",
        f"serial:        {info.serial_hex}",
        f"CA:            {info.ca}",
        f"status:        {info.status}",
        f"profile:       {info.profile}",
        f"subject:       {info.subject}",
        f"key:           {info.key_mode}" + (f" (owner {info.owner})" if info.owner else ""),
        f"valid:         {isoformat_utc(info.not_before)} .. {isoformat_utc(info.not_after)}",
        f"fingerprint:   {info.fingerprint_sha256 or '-'}",
    ]
    if info.revoked_at is not None:
        lines.append(f"revoked:       {isoformat_utc(info.revoked_at)} ({info.revocation_reason})")
    return lines


@app.command("list")
def list_cas() -> None:
    """List the certificate authorities."""
    with _service() as (_platform, service):
        for info in service.list_cas():
            typer.echo(f"{info.name}\t{info.parent or '-'}\t{info.status}\t{isoformat_utc(info.not_after)}\t"
                       f"{info.subject}\t{info.fingerprint_sha256}")


@app.command("show")
def show(
    name: str = typer.Argument(..., help="A CA name, or a certificate id or serial number."),
) -> None:
    """Show a CA or a certificate."""
    from ca.service_errors import UnknownCA

    with _service() as (_platform, service):
        try:
            lines = _describe_ca(service.get_ca(name))
        except UnknownCA:
            lines = _describe_certificate(service.get_certificate(name))
        typer.echo("\n".join(lines))


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Name of the new CA (used in its URLs)."),
    parent: str = typer.Option("root", "--parent", help="The CA that certifies it."),
    path_length: int | None = typer.Option(None, "--path-length", help="pathLenConstraint (default 0)."),
    permitted_dns: list[str] = typer.Option([], "--permitted-dns", help="Name constraint: permitted DNS subtree."),
    excluded_dns: list[str] = typer.Option([], "--excluded-dns", help="Name constraint: excluded DNS subtree."),
    permitted_email: list[str] = typer.Option([], "--permitted-email", help="Name constraint: permitted e-mail."),
    permitted_ip: list[str] = typer.Option([], "--permitted-ip", help="Name constraint: permitted IP network."),
    algorithm: str | None = typer.Option(None, "--algorithm", help="Key algorithm (default [ca] algorithm)."),
    common_name: str | None = typer.Option(None, "--common-name", help="CN of the CA's subject."),
    validity_days: int | None = typer.Option(None, "--validity-days", help="Validity (default: the profile's)."),
) -> None:
    """Create a subordinate CA with its own OCSP responder and CRL."""
    constraints = None
    if permitted_dns or excluded_dns or permitted_email or permitted_ip:
        networks: Any = tuple(permitted_ip)  # parsed (and checked) by NameConstraints
        constraints = NameConstraints(permitted_dns=tuple(permitted_dns), excluded_dns=tuple(excluded_dns),
                                      permitted_email=tuple(permitted_email), permitted_ip=networks)
    with _service() as (_platform, service):
        info = service.create_ca(name, parent=parent, actor=_actor(), algorithm=algorithm, common_name=common_name,
                                 path_length=path_length, name_constraints=constraints, validity_days=validity_days)
        typer.echo("\n".join(_describe_ca(info)))


@app.command("issue")
def issue(
    profile: str = typer.Option(..., "--profile", help="Certificate profile, e.g. server-tls."),
    csr: Path = typer.Option(..., "--csr", exists=True, dir_okay=False, help="PKCS #10 request, PEM or DER."),
    ca: str | None = typer.Option(None, "--ca", help="Issuing CA (default [ca] issuing_name)."),
    validity_days: int | None = typer.Option(None, "--validity-days", help="Validity (default: the profile's)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the certificate (PEM) here."),
    chain_output: Path | None = typer.Option(None, "--chain", help="Write the CA chain (PEM) here."),
) -> None:
    """Issue a certificate from a CSR (subject and names from the CSR)."""
    request = IssueRequest(profile=profile, ca=ca, csr=csr.read_bytes(), validity_days=validity_days)
    with _service() as (_platform, service):
        result = service.issue(request, actor=_actor(), privileged=True)  # the operator on the host
    info = result.certificate
    typer.echo(f"issued certificate {info.id} serial {info.serial_hex} ({info.subject}) until "
               f"{isoformat_utc(info.not_after)}", err=True)
    assert info.pem is not None
    _write(output, info.pem)
    if chain_output is not None:
        _write(chain_output, result.chain_pem)


@app.command("renew")
def renew(
    reference: str = typer.Argument(..., help="Certificate id or serial number."),
    validity_days: int | None = typer.Option(None, "--validity-days"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the new certificate (PEM) here."),
) -> None:
    """Renew a certificate for the same key."""
    with _service() as (_platform, service):
        result = service.renew(reference, actor=_actor(), validity_days=validity_days)
    info = result.certificate
    typer.echo(f"renewed as certificate {info.id} serial {info.serial_hex} until {isoformat_utc(info.not_after)}",
               err=True)
    assert info.pem is not None
    _write(output, info.pem)


@app.command("revoke")
def revoke(
    reference: str = typer.Argument(..., help="Certificate id or serial number."),
    reason: str = typer.Option("unspecified", "--reason", help="RFC 5280 reason, e.g. keyCompromise, certificateHold."),
    invalidity_date: dt.datetime | None = typer.Option(None, "--invalidity-date", help="UTC unless a zone is given."),
) -> None:
    """Revoke a certificate (certificateHold puts it on hold)."""
    if invalidity_date is not None and invalidity_date.tzinfo is None:
        invalidity_date = invalidity_date.replace(tzinfo=dt.UTC)
    with _service() as (_platform, service):
        info = service.revoke(reference, actor=_actor(), reason=reason, invalidity_date=invalidity_date)
    typer.echo(f"{info.status} certificate {info.id} serial {info.serial_hex} ({info.revocation_reason}); "
               "OCSP reports it now, the CRL after the next publication")


@app.command("release")
def release(reference: str = typer.Argument(..., help="Certificate id or serial number.")) -> None:
    """Release a certificate from hold."""
    with _service() as (_platform, service):
        info = service.release(reference, actor=_actor())
    typer.echo(f"released certificate {info.id} serial {info.serial_hex}")


@app.command("crl")
def crl(
    ca: str = typer.Option(..., "--ca", help="The CA whose CRL to publish."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the CRL (DER) here."),
) -> None:
    """Publish a CA's CRL now."""
    with _service() as (_platform, service):
        published = service.publish_crl(ca)
    typer.echo(f"published CRL {published.crl_number} of {ca}: {published.entries} entries, next update "
               f"{isoformat_utc(published.next_update)}")
    if output is not None:
        output.write_bytes(published.der)


@app.command("export-chain")
def export_chain(
    ca: str = typer.Option("issuing", "--ca", help="The CA whose chain to export."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
    without_root: bool = typer.Option(False, "--without-root", help="Leave the self-signed root out."),
) -> None:
    """Write the CA's certificate and its ancestors as PEM, the CA first and the root last."""
    with _service() as (_platform, service):
        chain = service.chain(ca)
    if without_root:
        chain = [info for info in chain if not info.is_root]
    if not chain:
        raise InvalidInput("nothing to export")
    _write(output, b"".join(info.certificate_pem for info in chain))


@app.command("maintain")
def maintain() -> None:
    """Renew OCSP responder certificates that expire soon and raise expiry alerts now."""
    with _service() as (_platform, service):
        renewed = service.renew_ocsp_responders(actor=_actor())
        expiring = service.check_expiry()
    typer.echo(f"renewed OCSP responders: {', '.join(renewed) or 'none'}; "
               f"certificates expiring soon: {len(expiring)}")


# -- offline root and key lifecycle ---------------------------------------------------------------------


@app.command("export-csr")
def export_csr(
    ca: str = typer.Option(..., "--ca", help="The CA whose key the request is for."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the PEM CSR here (default: stdout)."),
    new_key: bool = typer.Option(
        False, "--new-key", help="Key rollover: prepare a successor CA with a new key and export its CSR."
    ),
) -> None:
    """A CSR for a CA's key in the key store, to be signed by a root kept off the network."""
    with _service() as (_, service):
        name, csr = service.export_csr(ca, new_key=new_key, actor=_actor())
        if name != ca:
            typer.echo(f"successor CA {name!r} awaits its certificate: `hengxin ca import-cert --ca {name} ...`",
                       err=True)
        _write(output, csr)


@app.command("import-cert")
def import_cert(
    certificate: Path = typer.Argument(..., help="The CA certificate signed by the offline root (PEM or DER)."),
    ca: str = typer.Option(..., "--ca", help="The CA whose key the certificate certifies."),
    root: Path = typer.Option(..., "--root", help="The offline root's certificate (PEM)."),
    root_name: str = typer.Option("offline-root", "--root-name", help="Name to record the offline root under."),
) -> None:
    """Install a CA certificate signed offline, after checking its key and its chain up to --root."""
    with _service() as (_, service):
        info = service.import_certificate(
            ca, certificate.read_bytes(), root.read_bytes(), actor=_actor(), root_name=root_name
        )
        for line in _describe_ca(info):
            typer.echo(line)


@app.command("import-crl")
def import_crl(crl: Path = typer.Argument(..., help="A CRL signed by the offline root (PEM or DER).")) -> None:
    """Store the offline root's CRL; it is served at /crl/<root>.crl."""
    with _service() as (_, service):
        published = service.import_crl(crl.read_bytes(), actor=_actor())
        typer.echo(f"imported CRL number {published.crl_number}, next update {isoformat_utc(published.next_update)}")


@app.command("rollover")
def rollover(ca: str = typer.Option(..., "--ca", help="The CA to give a new key.")) -> None:
    """New key and certificate for a CA; issuance moves to it, the old key keeps CRLs and OCSP for its certificates."""
    with _service() as (_, service):
        info = service.rollover(ca, actor=_actor())
        for line in _describe_ca(info):
            typer.echo(line)
