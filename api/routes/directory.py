"""The directory over HTTP: users, departments, groups, roles, and the LDAP publishing status.

Reads need ``directory.read``, writes ``directory.manage``.  Every write is
one transaction with its audit record (the actor is the calling principal,
the source its address).  Errors are problem documents with the directory's
codes (``directory.duplicate_login``, ``directory.department_cycle`` ...).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Permission, client_address, current_principal, platform_of, require
from api.pagination import Page, PageParams, page_of
from core.clock import isoformat_utc
from directory.service import DirectoryService
from directory.service_errors import UnknownPermission
from directory.values import Department, Group, Role, RoleAssignment, User

router = APIRouter(tags=["directory"])

READ: list[Any] = [require(Permission.DIRECTORY_READ)]
MANAGE: list[Any] = [require(Permission.DIRECTORY_MANAGE)]


def _service(request: Request) -> DirectoryService:
    from api.components.directory import directory_service

    return directory_service(platform_of(request))


def _actor(request: Request) -> tuple[str, str]:
    return current_principal(request).actor, client_address(request)


def _time(moment: dt.datetime | None) -> str | None:
    return isoformat_utc(moment) if moment is not None else None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- users ------------------------------------------------------------------------------------------


class UserCreate(Body):
    login: str = Field(..., min_length=1, max_length=100, description="Stored in lower case.")
    display_name: str = Field(..., min_length=1, max_length=200, description="In any script, e.g. 张伟.")
    given_name: str | None = Field(None, max_length=100)
    surname: str | None = Field(None, max_length=100)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=40)
    department: str | None = Field(None, max_length=64, description="Department code.")
    kind: Literal["person", "service"] = "person"
    expires_at: dt.datetime | None = Field(None, description="RFC 3339 time with a zone; the account expires then.")
    auth_source: str = Field("local", max_length=60, description="'local' or 'ldap:<configured directory>'.")
    password: str | None = Field(None, min_length=1, max_length=1024, description="Optional first password.")


class UserUpdate(Body):
    display_name: str | None = Field(None, min_length=1, max_length=200)
    given_name: str | None = Field(None, max_length=100)
    surname: str | None = Field(None, max_length=100)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=40)
    department: str | None = Field(None, max_length=64)
    expires_at: dt.datetime | None = None
    auth_source: str | None = Field(None, max_length=60)


class PasswordBody(Body):
    password: str = Field(..., min_length=1, max_length=1024)


class ReasonBody(Body):
    reason: str | None = Field(None, max_length=500)


class RoleGrantBody(Body):
    role: str = Field(..., min_length=1, max_length=64)
    department: str | None = Field(None, max_length=64, description="Department code; empty: everywhere.")


class RoleAssignmentOut(BaseModel):
    role: str
    department: str | None
    permissions: list[str]
    granted_at: str
    granted_by: str


class UserOut(BaseModel):
    login: str
    kind: str
    display_name: str
    given_name: str | None
    surname: str | None
    email: str | None
    phone: str | None
    department: str | None
    department_path: list[str]
    status: str
    lock_reason: str | None
    expires_at: str | None
    expired: bool
    auth_source: str
    has_password: bool
    password_changed_at: str | None
    password_expires_at: str | None
    failed_logins: int
    locked_until: str | None
    lockout_count: int
    last_login_at: str | None
    certificates: int
    created_at: str
    updated_at: str


class UserDetailOut(UserOut):
    external_dn: str | None
    groups: list[str]
    roles: list[RoleAssignmentOut]


def _user_out(user: User) -> dict[str, Any]:
    return {
        "login": user.login,
        "kind": user.kind,
        "display_name": user.display_name,
        "given_name": user.given_name,
        "surname": user.surname,
        "email": user.email,
        "phone": user.phone,
        "department": user.department_code,
        "department_path": list(user.department_path),
        "status": user.status,
        "lock_reason": user.lock_reason,
        "expires_at": _time(user.expires_at),
        "expired": user.expired,
        "auth_source": user.auth_source,
        "has_password": user.has_password,
        "password_changed_at": _time(user.password_changed_at),
        "password_expires_at": _time(user.password_expires_at),
        "failed_logins": user.failed_logins,
        "locked_until": _time(user.locked_until),
        "lockout_count": user.lockout_count,
        "last_login_at": _time(user.last_login_at),
        "certificates": user.certificates,
        "created_at": _time(user.created_at),
        "updated_at": _time(user.updated_at),
    }


def _assignment_out(assignment: RoleAssignment) -> RoleAssignmentOut:
    return RoleAssignmentOut(
        role=assignment.role,
        department=assignment.department_code,
        permissions=list(assignment.permissions),
        granted_at=isoformat_utc(assignment.granted_at),
        granted_by=assignment.granted_by,
    )


def _user_detail(service: DirectoryService, user: User) -> UserDetailOut:
    groups = [g.name for g in service.list_groups(member=user.login, limit=500)]
    roles = [_assignment_out(a) for a in service.role_assignments(user.login)]
    return UserDetailOut(**_user_out(user), external_dn=user.external_dn, groups=groups, roles=roles)


@router.get("/api/v1/users", dependencies=READ, response_model=Page[UserOut], summary="List users, by login")
def list_users(
    request: Request,
    page: PageParams = Depends(),
    department: str | None = Query(None, max_length=64, description="Department code."),
    subdepartments: bool = Query(False, description="With department: include its sub-departments."),
    status: Literal["active", "locked", "disabled"] | None = Query(None),
    kind: Literal["person", "service"] | None = Query(None),
    q: str | None = Query(None, max_length=100, description="Matches login, display name or email."),
) -> Page[UserOut]:
    users = _service(request).list_users(
        department=department,
        include_subdepartments=subdepartments,
        status=status,
        kind=kind,
        q=q,
        after=page.after(),
        limit=page.limit + 1,
    )
    return page_of([UserOut(**_user_out(u)) for u in users], page.limit, lambda item: item.login)


@router.post(
    "/api/v1/users",
    status_code=201,
    dependencies=MANAGE,
    response_model=UserDetailOut,
    summary="Create a user or service account",
)
def create_user(body: UserCreate, request: Request) -> UserDetailOut:
    actor, source = _actor(request)
    service = _service(request)
    user = service.create_user(actor, source=source, **body.model_dump())
    return _user_detail(service, user)


@router.get("/api/v1/users/{login}", dependencies=READ, response_model=UserDetailOut, summary="Show a user")
def get_user(login: str, request: Request) -> UserDetailOut:
    service = _service(request)
    return _user_detail(service, service.get_user(login))


@router.patch(
    "/api/v1/users/{login}",
    dependencies=MANAGE,
    response_model=UserDetailOut,
    summary="Change a user's attributes (fields sent as null are cleared)",
)
def update_user(login: str, body: UserUpdate, request: Request) -> UserDetailOut:
    actor, source = _actor(request)
    service = _service(request)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if "auth_source" in changes and changes["auth_source"] is None:
        changes["auth_source"] = "local"
    user = service.update_user(actor, login, source=source, **changes)
    return _user_detail(service, user)


def _status_action(name: str, summary: str) -> None:
    def action(login: str, request: Request, body: ReasonBody | None = None) -> UserDetailOut:
        actor, source = _actor(request)
        service = _service(request)
        method = getattr(service, f"{name}_user")
        user = method(actor, login, reason=body.reason if body else None, source=source)
        return _user_detail(service, user)

    action.__name__ = f"{name}_user"
    router.add_api_route(
        f"/api/v1/users/{{login}}/{name}",
        action,
        methods=["POST"],
        dependencies=MANAGE,
        response_model=UserDetailOut,
        summary=summary,
    )


_status_action("lock", "Lock an account (LDAP binds fail too)")
_status_action("unlock", "Unlock an account and clear its failed logins")
_status_action("disable", "Disable an account")
_status_action("enable", "Enable a disabled account")


@router.post(
    "/api/v1/users/{login}/password",
    status_code=204,
    dependencies=MANAGE,
    summary="Set a user's password (policy and history apply)",
)
def set_password(login: str, body: PasswordBody, request: Request) -> Response:
    actor, source = _actor(request)
    _service(request).set_password(actor, login, body.password, source=source)
    return Response(status_code=204)


@router.get(
    "/api/v1/users/{login}/roles",
    dependencies=READ,
    response_model=list[RoleAssignmentOut],
    summary="Roles a user holds",
)
def user_roles(login: str, request: Request) -> list[RoleAssignmentOut]:
    return [_assignment_out(a) for a in _service(request).role_assignments(login)]


@router.post(
    "/api/v1/users/{login}/roles",
    status_code=201,
    dependencies=MANAGE,
    response_model=RoleAssignmentOut,
    summary="Grant a role, everywhere or within a department",
)
def grant_role(login: str, body: RoleGrantBody, request: Request) -> RoleAssignmentOut:
    actor, source = _actor(request)
    assignment = _service(request).grant_role(actor, login, body.role, department=body.department, source=source)
    return _assignment_out(assignment)


@router.delete(
    "/api/v1/users/{login}/roles/{role}",
    status_code=204,
    dependencies=MANAGE,
    summary="Revoke a role (the grant with the given department scope)",
)
def revoke_role(
    login: str,
    role: str,
    request: Request,
    department: str | None = Query(None, max_length=64, description="The scope of the grant to revoke."),
) -> Response:
    actor, source = _actor(request)
    _service(request).revoke_role(actor, login, role, department=department, source=source)
    return Response(status_code=204)


# -- departments ---------------------------------------------------------------------------------


class DepartmentCreate(Body):
    code: str = Field(..., min_length=1, max_length=64)
    name: str = Field(..., min_length=1, max_length=200, description="In any script, e.g. 财政局.")
    parent: str | None = Field(None, max_length=64, description="Parent department code; empty: top level.")
    description: str | None = Field(None, max_length=2000)


class DepartmentUpdate(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    parent: str | None = Field(None, max_length=64, description="New parent code; null: move to the top level.")
    description: str | None = Field(None, max_length=2000)


class DepartmentOut(BaseModel):
    code: str
    name: str
    parent: str | None
    path: list[str]
    description: str | None
    created_at: str
    updated_at: str


def _department_out(department: Department) -> DepartmentOut:
    return DepartmentOut(
        code=department.code,
        name=department.name,
        parent=department.parent_code,
        path=list(department.path),
        description=department.description,
        created_at=isoformat_utc(department.created_at),
        updated_at=isoformat_utc(department.updated_at),
    )


@router.get(
    "/api/v1/departments", dependencies=READ, response_model=Page[DepartmentOut], summary="List departments, by code"
)
def list_departments(
    request: Request,
    page: PageParams = Depends(),
    parent: str | None = Query(None, max_length=64, description="Only the direct sub-departments of this code."),
    q: str | None = Query(None, max_length=100, description="Matches code or name."),
) -> Page[DepartmentOut]:
    departments = _service(request).list_departments(parent=parent, q=q, after=page.after(), limit=page.limit + 1)
    return page_of([_department_out(d) for d in departments], page.limit, lambda item: item.code)


@router.post(
    "/api/v1/departments",
    status_code=201,
    dependencies=MANAGE,
    response_model=DepartmentOut,
    summary="Create a department",
)
def create_department(body: DepartmentCreate, request: Request) -> DepartmentOut:
    actor, source = _actor(request)
    return _department_out(_service(request).create_department(actor, source=source, **body.model_dump()))


@router.get("/api/v1/departments/{code}", dependencies=READ, response_model=DepartmentOut, summary="Show a department")
def get_department(code: str, request: Request) -> DepartmentOut:
    return _department_out(_service(request).get_department(code))


@router.patch(
    "/api/v1/departments/{code}",
    dependencies=MANAGE,
    response_model=DepartmentOut,
    summary="Rename, move or describe a department",
)
def update_department(code: str, body: DepartmentUpdate, request: Request) -> DepartmentOut:
    actor, source = _actor(request)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if changes.get("name", "") is None:
        changes.pop("name")
    return _department_out(_service(request).update_department(actor, code, source=source, **changes))


@router.delete("/api/v1/departments/{code}", status_code=204, dependencies=MANAGE, summary="Delete an empty department")
def delete_department(code: str, request: Request) -> Response:
    actor, source = _actor(request)
    _service(request).delete_department(actor, code, source=source)
    return Response(status_code=204)


# -- groups ---------------------------------------------------------------------------------------


class GroupCreate(Body):
    name: str = Field(..., min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)


class GroupUpdate(Body):
    description: str | None = Field(None, max_length=2000)


class GroupOut(BaseModel):
    name: str
    description: str | None
    members: list[str]
    created_at: str
    updated_at: str


def _group_out(group: Group) -> GroupOut:
    return GroupOut(
        name=group.name,
        description=group.description,
        members=list(group.members),
        created_at=isoformat_utc(group.created_at),
        updated_at=isoformat_utc(group.updated_at),
    )


@router.get("/api/v1/groups", dependencies=READ, response_model=Page[GroupOut], summary="List groups, by name")
def list_groups(
    request: Request,
    page: PageParams = Depends(),
    q: str | None = Query(None, max_length=100),
    member: str | None = Query(None, max_length=100, description="Only the groups of this login."),
) -> Page[GroupOut]:
    groups = _service(request).list_groups(q=q, member=member, after=page.after(), limit=page.limit + 1)
    return page_of([_group_out(g) for g in groups], page.limit, lambda item: item.name)


@router.post("/api/v1/groups", status_code=201, dependencies=MANAGE, response_model=GroupOut, summary="Create a group")
def create_group(body: GroupCreate, request: Request) -> GroupOut:
    actor, source = _actor(request)
    return _group_out(_service(request).create_group(actor, source=source, **body.model_dump()))


@router.get("/api/v1/groups/{name}", dependencies=READ, response_model=GroupOut, summary="Show a group")
def get_group(name: str, request: Request) -> GroupOut:
    return _group_out(_service(request).get_group(name))


@router.patch("/api/v1/groups/{name}", dependencies=MANAGE, response_model=GroupOut, summary="Describe a group")
def update_group(name: str, body: GroupUpdate, request: Request) -> GroupOut:
    actor, source = _actor(request)
    changes = {key: getattr(body, key) for key in body.model_fields_set}
    return _group_out(_service(request).update_group(actor, name, source=source, **changes))


@router.delete("/api/v1/groups/{name}", status_code=204, dependencies=MANAGE, summary="Delete a group")
def delete_group(name: str, request: Request) -> Response:
    actor, source = _actor(request)
    _service(request).delete_group(actor, name, source=source)
    return Response(status_code=204)


@router.put(
    "/api/v1/groups/{name}/members/{login}", dependencies=MANAGE, response_model=GroupOut, summary="Add a member"
)
def add_member(name: str, login: str, request: Request) -> GroupOut:
    actor, source = _actor(request)
    return _group_out(_service(request).add_group_member(actor, name, login, source=source))


@router.delete(
    "/api/v1/groups/{name}/members/{login}", dependencies=MANAGE, response_model=GroupOut, summary="Remove a member"
)
def remove_member(name: str, login: str, request: Request) -> GroupOut:
    actor, source = _actor(request)
    return _group_out(_service(request).remove_group_member(actor, name, login, source=source))


# -- roles ----------------------------------------------------------------------------------------


def _known_permissions(permissions: list[str] | None) -> list[str] | None:
    """Roles may only hold permissions the platform knows (or '*')."""
    if permissions is None:
        return None
    known = {p.value for p in Permission} | {"*"}
    unknown = sorted(set(permissions) - known)
    if unknown:
        raise UnknownPermission(
            f"unknown permissions: {', '.join(unknown)}", detail_zh="未知权限", unknown=unknown, field="permissions"
        )
    return permissions


class RoleCreate(Body):
    name: str = Field(..., min_length=1, max_length=64)
    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    permissions: list[str] = Field(default_factory=list, max_length=100)


class RoleUpdate(Body):
    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    permissions: list[str] | None = Field(None, max_length=100, description="Replaces the whole set.")


class RoleOut(BaseModel):
    name: str
    display_name: str | None
    description: str | None
    permissions: list[str]
    created_at: str
    updated_at: str


def _role_out(role: Role) -> RoleOut:
    return RoleOut(
        name=role.name,
        display_name=role.display_name,
        description=role.description,
        permissions=list(role.permissions),
        created_at=isoformat_utc(role.created_at),
        updated_at=isoformat_utc(role.updated_at),
    )


@router.get("/api/v1/roles", dependencies=READ, response_model=Page[RoleOut], summary="List roles, by name")
def list_roles(
    request: Request, page: PageParams = Depends(), q: str | None = Query(None, max_length=100)
) -> Page[RoleOut]:
    roles = _service(request).list_roles(q=q, after=page.after(), limit=page.limit + 1)
    return page_of([_role_out(r) for r in roles], page.limit, lambda item: item.name)


@router.post("/api/v1/roles", status_code=201, dependencies=MANAGE, response_model=RoleOut, summary="Create a role")
def create_role(body: RoleCreate, request: Request) -> RoleOut:
    actor, source = _actor(request)
    _known_permissions(body.permissions)
    return _role_out(_service(request).create_role(actor, source=source, **body.model_dump()))


@router.get("/api/v1/roles/{name}", dependencies=READ, response_model=RoleOut, summary="Show a role")
def get_role(name: str, request: Request) -> RoleOut:
    return _role_out(_service(request).get_role(name))


@router.patch("/api/v1/roles/{name}", dependencies=MANAGE, response_model=RoleOut, summary="Change a role")
def update_role(name: str, body: RoleUpdate, request: Request) -> RoleOut:
    actor, source = _actor(request)
    changes = {key: getattr(body, key) for key in body.model_fields_set}
    if "permissions" in changes:
        _known_permissions(changes["permissions"] or [])
    return _role_out(_service(request).update_role(actor, name, source=source, **changes))


@router.delete("/api/v1/roles/{name}", status_code=204, dependencies=MANAGE, summary="Delete a role nobody holds")
def delete_role(name: str, request: Request) -> Response:
    actor, source = _actor(request)
    _service(request).delete_role(actor, name, source=source)
    return Response(status_code=204)


# -- publishing status ----------------------------------------------------------------------------


class OutboxEntryOut(BaseModel):
    sequence: int
    entity: str
    key: str
    operation: str
    created_at: str
    attempts: int
    last_error: str | None


class DirectoryStatusOut(BaseModel):
    publishing: bool
    pending: int
    failed: int
    oldest_pending_at: str | None
    next: OutboxEntryOut | None
    failed_entries: list[OutboxEntryOut]


@router.get(
    "/api/v1/directory/status",
    dependencies=READ,
    response_model=DirectoryStatusOut,
    summary="LDAP publishing: queued and failed changes",
)
def directory_status(request: Request) -> DirectoryStatusOut:
    from api.components.directory import directory_publisher

    publisher = directory_publisher(platform_of(request))
    if publisher is None:
        return DirectoryStatusOut(
            publishing=False, pending=0, failed=0, oldest_pending_at=None, next=None, failed_entries=[]
        )
    status = publisher.status()

    def out(entry: Any) -> OutboxEntryOut:
        return OutboxEntryOut(
            sequence=entry.sequence,
            entity=entry.entity,
            key=entry.key,
            operation=entry.operation,
            created_at=isoformat_utc(entry.created_at),
            attempts=entry.attempts,
            last_error=entry.last_error,
        )

    return DirectoryStatusOut(
        publishing=True,
        pending=status.pending,
        failed=status.failed,
        oldest_pending_at=_time(status.oldest_pending_at),
        next=out(status.head) if status.head is not None else None,
        failed_entries=[out(e) for e in status.failed_entries],
    )
