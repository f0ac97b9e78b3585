"""``hengxin sign ...`` and ``hengxin verify FILE``: sign documents with organisation seals, add document
timestamps, create seal certificates, verify signatures, from the operator's shell.

The CLI is the operator's path, in-process: signatures go through the same
service as the API (``api/components/signing.py``), are recorded and
audit-logged as the CLI actor (``cli:<user>``) before the output is written.
The seal rules of ``[[signing.seals]]`` govern callers of the API; the
operator, who already holds the machine, may use any configured seal, and
the audit record says so (``path: cli``).

Personal signatures are refused here (``signing.personal_signing_refused``):
the Electronic Signature Law (电子签名法, article 13) requires that the
signature creation data is under the sole control of the signatory.  An
operator signing "as" a person would break that; people sign through
``POST /api/v1/signatures/pdf`` after their own password + TOTP (or
certificate) login.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from api.components.signing import Caller, SigningPlatform, report_json, service_of
from api.platform import Platform, open_platform
from core.errors import InvalidInput
from signing.service import PersonalSigningRefused

sign_app = typer.Typer(
    help="Sign documents with organisation seals, add document timestamps, create seal certificates.",
    no_args_is_help=True,
)
verify_app = typer.Typer(help="Verify the signatures of a PDF, or a detached CMS signature (--content).")


@contextmanager
def _service() -> Iterator[tuple[Platform, SigningPlatform]]:
    from api.cli import settings  # imported here: api.cli imports this module while loading

    platform = open_platform(settings())
    try:
        yield platform, service_of(platform)
    finally:
        platform.close()


def _caller() -> Caller:
    return Caller("cli", os.environ.get("SUDO_USER") or os.environ.get("USER") or "root")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}", detail_zh=f"无法读取 {path}") from None


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as e:
        raise InvalidInput(f"cannot write {path}: {e.strerror}", detail_zh=f"无法写入 {path}") from None


def _refuse_personal(user: str | None, seal: str | None) -> str:
    if user is not None or not seal:
        raise PersonalSigningRefused(
            "personal signatures are made only by the signatory through the API after their own strong login "
            "(Electronic Signature Law: the signatory alone controls the signing); use --seal NAME",
            detail_zh="个人签名只能由签名人本人经强认证后通过接口发起"
            "（电子签名法：签名制作数据仅由签名人控制）；请使用 --seal",
        )
    return seal


@sign_app.command("pdf")
def sign_pdf(
    file: Path = typer.Argument(..., help="The PDF to sign."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the signed PDF."),
    seal: str | None = typer.Option(None, "--seal", help="The organisation seal ([[signing.seals]] name)."),
    user: str | None = typer.Option(None, "--user", help="Refused: personal signatures go through the API."),
    level: str | None = typer.Option(None, "--level", help="B-B, B-T, B-LT or B-LTA (default [signing])."),
    reason: str | None = typer.Option(None, "--reason"),
    location: str | None = typer.Option(None, "--location"),
    contact: str | None = typer.Option(None, "--contact"),
) -> None:
    """Sign FILE with an organisation seal; the signature is recorded and audited before OUTPUT is written."""
    name = _refuse_personal(user, seal)
    document = _read(file)
    caller = _caller()
    with _service() as (_platform, service):
        choice = service.seal_signer(name, caller, source="cli", enforce_rule=False)
        signed, record = service.sign_pdf(
            document, choice, caller, level=level, reason=reason, location=location, contact=contact, source="cli",
            details={"path": "cli"},
        )
    _write(output, signed)
    typer.echo(f"wrote {output}", err=True)
    typer.echo(f"record:  {record.id}")
    typer.echo(f"level:   {record.level}")
    typer.echo(f"signer:  {record.signer_subject} (serial {record.signer_serial})")
    typer.echo(f"sha256:  {record.output_sha256}")


@sign_app.command("cms")
def sign_cms(
    file: Path = typer.Argument(..., help="The file to sign."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the DER signature (.p7s)."),
    seal: str | None = typer.Option(None, "--seal", help="The organisation seal ([[signing.seals]] name)."),
    user: str | None = typer.Option(None, "--user", help="Refused: personal signatures go through the API."),
    level: str = typer.Option("B-T", "--level", help="B-B or B-T."),
) -> None:
    """A detached CMS/CAdES signature over FILE with an organisation seal."""
    name = _refuse_personal(user, seal)
    content = _read(file)
    caller = _caller()
    with _service() as (_platform, service):
        choice = service.seal_signer(name, caller, source="cli", enforce_rule=False)
        p7s, record = service.sign_cms(content, choice, caller, level=level, source="cli", details={"path": "cli"})
    _write(output, p7s)
    typer.echo(f"wrote {output}", err=True)
    typer.echo(f"record:  {record.id}")
    typer.echo(f"level:   {record.level}")
    typer.echo(f"signer:  {record.signer_subject} (serial {record.signer_serial})")


@sign_app.command("timestamp")
def timestamp_pdf(
    file: Path = typer.Argument(..., help="The PDF to timestamp."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the timestamped PDF."),
) -> None:
    """Add a document timestamp (and the TSA's validation data) to FILE."""
    document = _read(file)
    with _service() as (_platform, service):
        stamped, record = service.timestamp_pdf(document, _caller(), source="cli", details={"path": "cli"})
    _write(output, stamped)
    typer.echo(f"wrote {output}", err=True)
    typer.echo(f"record:  {record.id}")


@sign_app.command("seal-create")
def seal_create(
    name: str = typer.Argument(..., help="The seal's short name (lower case, digits, - and _)."),
    subject_o: str = typer.Option(..., "--subject-o", help="Organisation (O) of the seal certificate."),
    subject_cn: str | None = typer.Option(None, "--subject-cn", help="Common name (default: O + 电子印章)."),
    subject_ou: str | None = typer.Option(None, "--subject-ou", help="Organisational unit (OU)."),
    key_algorithm: str | None = typer.Option(None, "--key-algorithm", help="e.g. ec-p256 (default: the CA's)."),
    allowed_user: list[str] = typer.Option([], "--allow-user", help="Login allowed to use it (repeatable)."),
    allowed_role: list[str] = typer.Option([], "--allow-role", help="Role allowed to use it (repeatable)."),
) -> None:
    """Issue an organisation-seal certificate with a custodial key and print its [[signing.seals]] snippet.

    The configuration decides who may use the seal: add the snippet to the configuration file.
    """
    import re

    from api.components.signing import SEAL_PROFILE
    from ca.service import IssueRequest

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
        raise InvalidInput("the seal name must be lower case letters, digits, - and _", detail_zh="印章名称格式无效")
    subject = {"CN": subject_cn or f"{subject_o}电子印章", "O": subject_o}
    if subject_ou:
        subject["OU"] = subject_ou
    with _service() as (platform, _service_unused):
        ca = platform.services["ca"]
        result = ca.issue(
            IssueRequest(profile=SEAL_PROFILE, key_mode="custodial", owner=f"seal:{name}", subject=subject,
                         key_algorithm=key_algorithm),
            actor=_caller().actor,
        )
    info = result.certificate
    typer.echo(f"# seal certificate {info.serial_hex} ({info.subject}), valid until {info.not_after.isoformat()}",
               err=True)
    typer.echo("[[signing.seals]]")
    typer.echo(f"name = {json.dumps(name)}")
    typer.echo(f'certificate = "{info.id}"')
    typer.echo(f"allowed_users = {json.dumps(allowed_user, ensure_ascii=False)}")
    typer.echo(f"allowed_roles = {json.dumps(allowed_role, ensure_ascii=False)}")


@verify_app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def verify(
    file: Path = typer.Argument(..., help="A signed PDF, or a DER CMS signature (.p7s) with --content."),
    content: Path | None = typer.Option(None, "--content", help="The signed content of a detached CMS signature."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
    etsi: bool = typer.Option(False, "--etsi", help="With --json: include the ETSI TS 119 102-2 XML reports."),
) -> None:
    """Verify against this platform's root CAs; exit 0 only if every signature is valid and trusted."""
    data = _read(file)
    with _service() as (_platform, service):
        report = (
            service.verify_cms(data, _read(content)) if content is not None
            else service.verify_pdf(data, etsi_report=etsi)
        )
    if as_json:
        typer.echo(json.dumps(report_json(report), ensure_ascii=False, indent=2))
    else:
        for entry in report.signatures:
            signer = entry.signer.subject if entry.signer else "unknown"
            state = "OK" if entry.ok else "FAILED"
            typer.echo(f"#{entry.index} {entry.kind} {state}: intact={entry.intact} valid={entry.valid} "
                       f"trusted={entry.trusted} level={entry.level} revocation={entry.revocation.value}")
            typer.echo(f"   signer: {signer}")
            for problem in entry.problems:
                typer.echo(f"   problem: {problem}")
    typer.echo(f"Verification: {'OK' if report.all_ok else 'FAILED'}")
    if not report.all_ok:
        raise typer.Exit(1)
