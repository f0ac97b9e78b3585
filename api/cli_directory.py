"""``hengxin user|department|group|role ...`` and ``hengxin directory ...``: the directory from the command line.

Passwords are never taken from the command line (it shows in ``ps`` and in
shell history): they are read from a file (``--password-file``) or a hidden
prompt.  Errors become one line on stderr and a non-zero exit in
``api.cli.main``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from core.clock import isoformat_utc
from core.errors import InvalidInput
from directory.service import DirectoryService
from directory.service_errors import DirectoryDrift, LDAPPublishingDisabled, PublishIncomplete, UnknownPermission
from directory.values import Department, Group, Role, User

user_app = typer.Typer(help="Users and service accounts.", no_args_is_help=True)
department_app = typer.Typer(help="Departments (a tree).", no_args_is_help=True)
group_app = typer.Typer(help="Groups of users.", no_args_is_help=True)
role_app = typer.Typer(help="Roles and their permissions.", no_args_is_help=True)
directory_app = typer.Typer(help="LDAP publishing and import from other directories.", no_args_is_help=True)

groups: dict[str, typer.Typer] = {
    "user": user_app,
    "department": department_app,
    "group": group_app,
    "role": role_app,
}

SOURCE = "cli"


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'root')}"


@contextlib.contextmanager
def _platform() -> Iterator[Any]:
    from api.cli import settings
    from api.platform import open_platform

    platform = open_platform(settings(), alerts_enabled=False)
    try:
        platform.require_audit()
        yield platform
    finally:
        platform.close()


@contextlib.contextmanager
def _service() -> Iterator[DirectoryService]:
    from api.components.directory import directory_service

    with _platform() as platform:
        yield directory_service(platform)


def _read_password(password_file: Path | None, *, confirm: bool = True, prompt: str = "Password") -> str:
    """The password from ``password_file`` (first line) or a hidden prompt."""
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"cannot read the password file {password_file}: {type(e).__name__}") from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise InvalidInput(f"the password file {password_file} is empty")
        return lines[0]
    value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value


def _parse_time(value: str | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{value!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _time(moment: dt.datetime | None) -> str:
    return isoformat_utc(moment) if moment is not None else "-"


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _user_lines(user: User) -> list[str]:
    return [
        f"login: {user.login}",
        f"kind: {user.kind}",
        f"display name: {user.display_name}",
        f"email: {user.email or '-'}",
        f"phone: {user.phone or '-'}",
        f"department: {'/'.join(user.department_path) or '-'}"
        + (f" ({user.department_code})" if user.department_code else ""),
        f"status: {user.status}" + (f" ({user.lock_reason})" if user.lock_reason else ""),
        f"expires: {_time(user.expires_at)}" + (" (expired)" if user.expired else ""),
        f"authentication: {user.auth_source}"
        + ("" if user.has_password or user.auth_source != "local" else " (no password set)"),
        f"password changed: {_time(user.password_changed_at)}; expires: {_time(user.password_expires_at)}",
        f"failed logins: {user.failed_logins}; temporarily locked until: {_time(user.locked_until)}; "
        f"lockouts: {user.lockout_count}",
        f"last login: {_time(user.last_login_at)}",
        f"certificates: {user.certificates}",
    ]


# -- users --------------------------------------------------------------------------------------------


@user_app.command("add")
def user_add(
    login: str = typer.Argument(..., help="Login name (stored in lower case)."),
    name: str = typer.Option(..., "--name", "-n", help="Display name, in any script (张伟)."),
    email: str | None = typer.Option(None, help="Email address."),
    phone: str | None = typer.Option(None, help="Telephone number."),
    department: str | None = typer.Option(None, "--department", "-d", help="Department code."),
    given_name: str | None = typer.Option(None, "--given-name", help="Given name."),
    surname: str | None = typer.Option(None, "--surname", help="Surname."),
    service: bool = typer.Option(False, "--service", help="A service account for an application."),
    expires: str | None = typer.Option(None, "--expires", help="Account expiry (ISO 8601; UTC if no zone)."),
    auth_source: str = typer.Option("local", "--auth-source", help="'local' or 'ldap:<configured directory>'."),
    password_file: Path | None = typer.Option(None, "--password-file", help="Set the first password from this file."),
    set_password: bool = typer.Option(False, "--set-password", help="Prompt for a first password."),
) -> None:
    """Create a user (or with --service a service account)."""
    password = _read_password(password_file) if password_file is not None or set_password else None
    with _service() as directory:
        user = directory.create_user(
            _actor(),
            login=login,
            display_name=name,
            given_name=given_name,
            surname=surname,
            email=email,
            phone=phone,
            department=department,
            kind="service" if service else "person",
            expires_at=_parse_time(expires),
            auth_source=auth_source,
            password=password,
            source=SOURCE,
        )
    typer.echo(f"created {user.kind} {user.login} ({user.display_name})")


@user_app.command("list")
def user_list(
    department: str | None = typer.Option(None, "--department", "-d", help="Department code."),
    subdepartments: bool = typer.Option(False, "--subdepartments", help="Include sub-departments."),
    status: str | None = typer.Option(None, help="active, locked or disabled."),
    kind: str | None = typer.Option(None, help="person or service."),
    query: str | None = typer.Option(None, "--query", "-q", help="Matches login, display name or email."),
    limit: int = typer.Option(500, min=1, max=10000, help="At most this many users."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """List users: login, status, display name, department."""
    with _service() as directory:
        users = directory.list_users(
            department=department,
            include_subdepartments=subdepartments,
            status=status,
            kind=kind,
            q=query,
            limit=limit,
        )
    if as_json:
        _echo_json([_user_json(u) for u in users])
        return
    for user in users:
        typer.echo(f"{user.login}\t{user.status}\t{user.display_name}\t{'/'.join(user.department_path) or '-'}")


def _user_json(user: User) -> dict[str, Any]:
    from api.routes.directory import _user_out

    return _user_out(user)


@user_app.command("show")
def user_show(login: str, as_json: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Show a user, with groups and roles."""
    with _service() as directory:
        user = directory.get_user(login)
        user_groups = [g.name for g in directory.list_groups(member=user.login, limit=500)]
        roles = directory.role_assignments(user.login)
    if as_json:
        _echo_json(
            {
                **_user_json(user),
                "groups": user_groups,
                "roles": [{"role": r.role, "department": r.department_code} for r in roles],
            }
        )
        return
    for line in _user_lines(user):
        typer.echo(line)
    typer.echo(f"groups: {', '.join(user_groups) or '-'}")
    typer.echo(
        "roles: "
        + (", ".join(r.role + (f" (in {r.department_code})" if r.department_code else "") for r in roles) or "-")
    )


@user_app.command("update")
def user_update(
    login: str,
    name: str | None = typer.Option(None, "--name", "-n", help="New display name."),
    email: str | None = typer.Option(None, help="New email address ('' clears)."),
    phone: str | None = typer.Option(None, help="New telephone number ('' clears)."),
    department: str | None = typer.Option(None, "--department", "-d", help="New department code ('' clears)."),
    expires: str | None = typer.Option(None, "--expires", help="New expiry (ISO 8601; '' clears)."),
) -> None:
    """Change a user's attributes."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["display_name"] = name
    if email is not None:
        changes["email"] = email or None
    if phone is not None:
        changes["phone"] = phone or None
    if department is not None:
        changes["department"] = department or None
    if expires is not None:
        changes["expires_at"] = _parse_time(expires)
    with _service() as directory:
        user = directory.update_user(_actor(), login, source=SOURCE, **changes)
    typer.echo(f"updated {user.login}")


def _status_command(action: str, done: str) -> None:
    def command(
        login: str = typer.Argument(..., help="Login name."),
        reason: str | None = typer.Option(None, "--reason", help="Recorded in the audit log."),
    ) -> None:
        with _service() as directory:
            user = getattr(directory, f"{action}_user")(_actor(), login, reason=reason, source=SOURCE)
        typer.echo(f"{user.login} {done} (status {user.status})")

    command.__doc__ = f"{action.capitalize()} an account."
    user_app.command(action)(command)


_status_command("lock", "locked")
_status_command("unlock", "unlocked")
_status_command("disable", "disabled")
_status_command("enable", "enabled")


@user_app.command("set-password")
def user_set_password(
    login: str,
    password_file: Path | None = typer.Option(
        None, "--password-file", help="Read the password from the first line of this file (else a hidden prompt)."
    ),
) -> None:
    """Set a user's password (the policy and history apply)."""
    password = _read_password(password_file)
    with _service() as directory:
        user = directory.set_password(_actor(), login, password, source=SOURCE)
    typer.echo(f"password of {user.login} set; it expires {_time(user.password_expires_at)}")


@user_app.command("grant-role")
def user_grant_role(
    login: str,
    role: str,
    department: str | None = typer.Option(None, "--department", "-d", help="Only within this department."),
) -> None:
    """Grant a role, everywhere or within one department (and its sub-departments)."""
    with _service() as directory:
        assignment = directory.grant_role(_actor(), login, role, department=department, source=SOURCE)
    scope = f" in {assignment.department_code}" if assignment.department_code else ""
    typer.echo(f"{assignment.login} holds {assignment.role}{scope}")


@user_app.command("revoke-role")
def user_revoke_role(
    login: str,
    role: str,
    department: str | None = typer.Option(None, "--department", "-d", help="The scope of the grant."),
) -> None:
    """Revoke a role grant."""
    with _service() as directory:
        directory.revoke_role(_actor(), login, role, department=department, source=SOURCE)
    typer.echo(f"revoked {role} from {login}")


# -- departments ------------------------------------------------------------------------------------


def _department_line(department: Department) -> str:
    return f"{department.code}\t{'/'.join(department.path)}"


@department_app.command("add")
def department_add(
    code: str = typer.Argument(..., help="Unique code (ASCII), e.g. finance."),
    name: str = typer.Argument(..., help="Name, in any script, e.g. 财政局."),
    parent: str | None = typer.Option(None, "--parent", "-p", help="Parent department code."),
    description: str | None = typer.Option(None, help="Description."),
) -> None:
    """Create a department."""
    with _service() as directory:
        department = directory.create_department(
            _actor(), code=code, name=name, parent=parent, description=description, source=SOURCE
        )
    typer.echo(f"created department {_department_line(department)}")


@department_app.command("list")
def department_list(
    parent: str | None = typer.Option(None, "--parent", "-p", help="Only sub-departments of this code."),
    query: str | None = typer.Option(None, "--query", "-q"),
    limit: int = typer.Option(1000, min=1, max=10000),
) -> None:
    """List departments: code and path."""
    with _service() as directory:
        for department in directory.list_departments(parent=parent, q=query, limit=limit):
            typer.echo(_department_line(department))


@department_app.command("show")
def department_show(code: str) -> None:
    """Show a department."""
    with _service() as directory:
        department = directory.get_department(code)
    typer.echo(f"code: {department.code}\nname: {department.name}\npath: {'/'.join(department.path)}")
    typer.echo(f"parent: {department.parent_code or '-'}\ndescription: {department.description or '-'}")


@department_app.command("move")
def department_move(
    code: str,
    parent: str | None = typer.Option(None, "--parent", "-p", help="New parent code."),
    top: bool = typer.Option(False, "--top", help="Make it a top-level department."),
) -> None:
    """Move a department (with its sub-departments and users) under another one."""
    if (parent is None) == (not top):
        raise InvalidInput("give exactly one of --parent CODE and --top")
    with _service() as directory:
        department = directory.update_department(_actor(), code, parent=None if top else parent, source=SOURCE)
    typer.echo(f"moved department {_department_line(department)}")


@department_app.command("rename")
def department_rename(code: str, name: str) -> None:
    """Rename a department."""
    with _service() as directory:
        department = directory.update_department(_actor(), code, name=name, source=SOURCE)
    typer.echo(f"renamed department {_department_line(department)}")


@department_app.command("delete")
def department_delete(code: str) -> None:
    """Delete a department without sub-departments, users or role grants."""
    with _service() as directory:
        directory.delete_department(_actor(), code, source=SOURCE)
    typer.echo(f"deleted department {code}")


# -- groups -------------------------------------------------------------------------------------------


def _group_line(group: Group) -> str:
    return f"{group.name}\t{len(group.members)} members"


@group_app.command("add")
def group_add(name: str, description: str | None = typer.Option(None, help="Description.")) -> None:
    """Create a group."""
    with _service() as directory:
        group = directory.create_group(_actor(), name=name, description=description, source=SOURCE)
    typer.echo(f"created group {group.name}")


@group_app.command("list")
def group_list(query: str | None = typer.Option(None, "--query", "-q"), limit: int = typer.Option(1000)) -> None:
    """List groups."""
    with _service() as directory:
        for group in directory.list_groups(q=query, limit=limit):
            typer.echo(_group_line(group))


@group_app.command("show")
def group_show(name: str) -> None:
    """Show a group and its members."""
    with _service() as directory:
        group = directory.get_group(name)
    typer.echo(f"name: {group.name}\ndescription: {group.description or '-'}")
    typer.echo(f"members: {', '.join(group.members) or '-'}")


@group_app.command("delete")
def group_delete(name: str) -> None:
    """Delete a group."""
    with _service() as directory:
        directory.delete_group(_actor(), name, source=SOURCE)
    typer.echo(f"deleted group {name}")


@group_app.command("add-member")
def group_add_member(name: str, login: str) -> None:
    """Add a user to a group."""
    with _service() as directory:
        group = directory.add_group_member(_actor(), name, login, source=SOURCE)
    typer.echo(_group_line(group))


@group_app.command("remove-member")
def group_remove_member(name: str, login: str) -> None:
    """Remove a user from a group."""
    with _service() as directory:
        group = directory.remove_group_member(_actor(), name, login, source=SOURCE)
    typer.echo(_group_line(group))


# -- roles --------------------------------------------------------------------------------------------


def _check_permissions(permissions: list[str]) -> list[str]:
    from api.auth import Permission

    known = {p.value for p in Permission} | {"*"}
    unknown = sorted(set(permissions) - known)
    if unknown:
        raise UnknownPermission(f"unknown permissions: {', '.join(unknown)}", unknown=unknown)
    return permissions


def _role_line(role: Role) -> str:
    return f"{role.name}\t{' '.join(role.permissions) or '-'}\t{role.display_name or ''}"


@role_app.command("add")
def role_add(
    name: str,
    permission: list[str] = typer.Option([], "--permission", "-p", help="A permission (repeat the option)."),
    display_name: str | None = typer.Option(None, "--display-name", help="Name shown to people (any script)."),
    description: str | None = typer.Option(None, help="Description."),
) -> None:
    """Create a role."""
    with _service() as directory:
        role = directory.create_role(
            _actor(),
            name=name,
            permissions=_check_permissions(permission),
            display_name=display_name,
            description=description,
            source=SOURCE,
        )
    typer.echo(f"created role {_role_line(role)}")


@role_app.command("list")
def role_list(query: str | None = typer.Option(None, "--query", "-q"), limit: int = typer.Option(1000)) -> None:
    """List roles and their permissions."""
    with _service() as directory:
        for role in directory.list_roles(q=query, limit=limit):
            typer.echo(_role_line(role))


@role_app.command("show")
def role_show(name: str) -> None:
    """Show a role."""
    with _service() as directory:
        role = directory.get_role(name)
    typer.echo(f"name: {role.name}\ndisplay name: {role.display_name or '-'}")
    typer.echo(f"description: {role.description or '-'}\npermissions: {' '.join(role.permissions) or '-'}")


@role_app.command("set-permissions")
def role_set_permissions(
    name: str,
    permission: list[str] = typer.Option([], "--permission", "-p", help="A permission (repeat the option)."),
) -> None:
    """Replace a role's permissions."""
    with _service() as directory:
        role = directory.update_role(_actor(), name, permissions=_check_permissions(permission), source=SOURCE)
    typer.echo(_role_line(role))


@role_app.command("delete")
def role_delete(name: str) -> None:
    """Delete a role nobody holds."""
    with _service() as directory:
        directory.delete_role(_actor(), name, source=SOURCE)
    typer.echo(f"deleted role {name}")


@role_app.command("grant-role")
def role_grant(
    role: str,
    login: str,
    department: str | None = typer.Option(None, "--department", "-d", help="Only within this department."),
) -> None:
    """Grant ROLE to LOGIN (same as `hengxin user grant-role LOGIN ROLE`)."""
    user_grant_role(login, role, department)


@role_app.command("revoke-role")
def role_revoke(
    role: str,
    login: str,
    department: str | None = typer.Option(None, "--department", "-d", help="The scope of the grant."),
) -> None:
    """Revoke ROLE from LOGIN."""
    user_revoke_role(login, role, department)


# -- directory: publishing and import ----------------------------------------------------------------


def _publisher(platform: Any) -> Any:
    from api.components.directory import directory_publisher

    publisher = directory_publisher(platform)
    if publisher is None:
        raise LDAPPublishingDisabled(
            "LDAP publishing is not enabled: set [directory] enabled = true and ldap_url",
            detail_zh="未启用 LDAP 发布：请设置 [directory] enabled = true 及 ldap_url",
        )
    return publisher


@directory_app.command("sync")
def directory_sync(
    full: bool = typer.Option(False, "--full", help="Compare the whole tree with the database and repair it."),
    check: bool = typer.Option(False, "--check", help="With --full: only report the drift (exit 1 if any)."),
) -> None:
    """Publish queued changes to LDAP now, or with --full reconcile everything and report the drift."""
    from api.components.directory import directory_service

    with _platform() as platform:
        publisher = _publisher(platform)
        if not full:
            directory_service(platform).sweep_expired()
            applied = set_aside = 0
            while True:
                report = publisher.publish_pending(wait_seconds=30.0)
                applied += report.applied
                set_aside += report.set_aside
                if report.busy or report.error or not report.pending:
                    break
            typer.echo(f"published {applied} change(s); {report.pending} pending; {set_aside} set aside")
            if report.busy:
                raise PublishIncomplete("another process is publishing; try again")
            if report.error:
                raise PublishIncomplete(
                    f"{report.pending} change(s) still pending: the next one failed with {report.error}",
                    detail_zh=f"仍有 {report.pending} 项变更待发布",
                )
            return
        result = publisher.sync_full(apply=not check)
    for line in result.lines():
        typer.echo(line)
    found = len(result.missing) + len(result.extra) + len(result.changed)
    if check:
        if found:
            raise DirectoryDrift(f"LDAP differs from the directory in {found} entries", drift=found)
        typer.echo("LDAP is in sync with the directory")
        return
    typer.echo(
        f"repaired {found} difference(s); cleared {result.cleared} queued change(s)"
        if found
        else f"LDAP was in sync; cleared {result.cleared} queued change(s)"
    )


@directory_app.command("status")
def directory_status() -> None:
    """Queued and set-aside LDAP changes."""
    with _platform() as platform:
        status = _publisher(platform).status()
    typer.echo(f"pending: {status.pending} (oldest {_time(status.oldest_pending_at)})")
    if status.head is not None:
        head = status.head
        typer.echo(
            f"next: {head.sequence} {head.entity} {head.operation} {head.key} (attempts {head.attempts}"
            + (f", last error {head.last_error}" if head.last_error else "")
            + ")"
        )
    typer.echo(f"set aside: {status.failed}")
    for entry in status.failed_entries:
        typer.echo(f"  {entry.sequence} {entry.entity} {entry.operation} {entry.key}: {entry.last_error}")


@directory_app.command("unblock-source")
def directory_unblock_source(address: str) -> None:
    """Forget the failed logins of a source address (lifting its block)."""
    with _service() as directory:
        found = directory.unblock_source(_actor(), address, source=SOURCE)
    typer.echo(f"unblocked {address}" if found else f"no failed logins recorded for {address}")


@directory_app.command("import")
def directory_import(
    url: str | None = typer.Option(None, "--from", help="LDAP URL of the source directory."),
    base: str | None = typer.Option(None, "--base", help="Search base in the source directory."),
    bind_dn: str | None = typer.Option(None, "--bind-dn", help="DN to bind as (default: anonymous)."),
    password_file: Path | None = typer.Option(None, "--password-file", help="File holding the bind password."),
    search_filter: str | None = typer.Option(
        None, "--filter", help="Users to import (default (objectClass=inetOrgPerson))."
    ),
    federation: str | None = typer.Option(
        None,
        "--federation",
        help="A configured external directory: read from it (unless --from is given) and "
        "let the imported users authenticate there.",
    ),
    department: str | None = typer.Option(None, "--department", "-d", help="Put every imported user here."),
    with_groups: bool = typer.Option(False, "--groups", help="Also import the groups listing the users as members."),
    group_filter: str | None = typer.Option(None, "--group-filter", help="Groups to read with --groups."),
    mapping: list[str] = typer.Option(
        [], "--map", help="FIELD=ATTRIBUTE, e.g. login=sAMAccountName (fields: login, display_name, email, ...)."
    ),
    start_tls: bool = typer.Option(False, "--start-tls", help="Use StartTLS."),
    ca_file: Path | None = typer.Option(None, "--ca-file", help="CA bundle for the server certificate."),
    update: bool = typer.Option(False, "--update", help="Update users whose login exists (else they are skipped)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would happen without storing anything."),
) -> None:
    """Import users (and optionally groups) from another LDAP directory or Active Directory."""
    from api.components.directory import directory_service
    from directory.federation import attribute_map, read_directory
    from directory.ldap import LDAPDirectory

    attributes: dict[str, str] = {}
    for item in mapping:
        field, sep, attribute = item.partition("=")
        if not sep or not field or not attribute:
            raise InvalidInput(f"--map {item!r}: use FIELD=ATTRIBUTE")
        attributes[field.strip()] = attribute.strip()
    with _platform() as platform:
        service = directory_service(platform)
        configured = None
        if federation is not None:
            configured = platform.services["directory_federation"].settings_of(federation)
        if url is None:
            if configured is None:
                raise InvalidInput("give --from URL (and --base), or --federation NAME of a configured directory")
            url, base = configured.url, base or configured.base_dn
            bind_dn = bind_dn or configured.bind_dn or None
            start_tls = start_tls or configured.start_tls
            ca_file = ca_file or configured.ca_file
            attributes = {**configured.attributes, **attributes}
            search_filter = search_filter or configured.import_filter
            group_filter = group_filter or configured.group_filter
        if not base:
            raise InvalidInput("give --base DN, the search base in the source directory")
        password = None
        if bind_dn:
            if password_file is not None:
                password = _read_password(password_file)
            elif configured is not None and configured.bind_password_secret and url == configured.url:
                password = platform.secrets.get(configured.bind_password_secret)
            else:
                password = _read_password(None, confirm=False, prompt=f"Password for {bind_dn}")
        settings = platform.settings.directory
        with LDAPDirectory(
            url,
            base,
            bind_dn=bind_dn,
            password=password,
            start_tls=start_tls,
            ca_file=ca_file,
            network_timeout=settings.network_timeout_seconds,
            operation_timeout=settings.operation_timeout_seconds,
        ) as source:
            content = read_directory(
                source,
                search_filter=search_filter or "(objectClass=inetOrgPerson)",
                mapping=attribute_map(attributes),
                with_groups=with_groups,
                group_filter=group_filter or "(|(objectClass=groupOfNames)(objectClass=group))",
            )
        report = service.import_users(
            _actor(),
            content,
            federation=federation,
            department=department,
            update_existing=update,
            dry_run=dry_run,
            source_url=url,
        )
    for outcome in report.users:
        if outcome.outcome == "skipped":
            typer.echo(f"skipped {outcome.login}: {outcome.reason}")
    prefix = "dry run: would have " if dry_run else ""
    typer.echo(
        f"{prefix}created {report.count('created')}, updated {report.count('updated')}, "
        f"skipped {report.count('skipped')} user(s); created {len(report.groups_created)} group(s), "
        f"added {report.memberships_added} membership(s)"
    )
