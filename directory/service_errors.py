"""Errors of the directory service (users, departments, groups, roles, passwords, publishing).

They extend :class:`directory.errors.DirectoryError`, like the LDAP adapter's
errors.  Codes are stable; messages name what was asked for (a login, a
department code) and never carry a password or a hash.

Authentication failures are deliberately uninformative: a wrong password, an
unknown login, a locked, disabled or expired account and a blocked source
address all raise :class:`InvalidCredentials` with the same text.  The reason
goes to the audit log only.
"""

from __future__ import annotations

from core.errors import Category
from directory.errors import DirectoryError


class InvalidDirectoryValue(DirectoryError):
    """A field is malformed (``field`` names it)."""

    code = "directory.invalid_value"
    category = Category.INVALID
    title_en = "Invalid directory value"
    title_zh = "目录数据无效"


class InvalidLogin(InvalidDirectoryValue):
    code = "directory.invalid_login"
    title_en = "Invalid login name"
    title_zh = "登录名无效"


class InvalidEmail(InvalidDirectoryValue):
    code = "directory.invalid_email"
    title_en = "Invalid email address"
    title_zh = "电子邮件地址无效"


class InvalidPhone(InvalidDirectoryValue):
    code = "directory.invalid_phone"
    title_en = "Invalid telephone number"
    title_zh = "电话号码无效"


class UnknownPermission(InvalidDirectoryValue):
    code = "directory.unknown_permission"
    title_en = "Unknown permission"
    title_zh = "未知权限"


class PasswordPolicyViolation(DirectoryError):
    """The new password breaks a rule of ``[passwords]``; ``rule`` names it."""

    code = "directory.password_policy"
    category = Category.INVALID
    title_en = "The password does not meet the password policy"
    title_zh = "密码不符合密码策略"


class DuplicateLogin(DirectoryError):
    code = "directory.duplicate_login"
    category = Category.CONFLICT
    title_en = "The login name is taken"
    title_zh = "登录名已被使用"


class DuplicateDepartment(DirectoryError):
    code = "directory.duplicate_department"
    category = Category.CONFLICT
    title_en = "A department with this code or name exists"
    title_zh = "同代码或同名部门已存在"


class DuplicateGroup(DirectoryError):
    code = "directory.duplicate_group"
    category = Category.CONFLICT
    title_en = "A group with this name exists"
    title_zh = "同名组已存在"


class DuplicateRole(DirectoryError):
    code = "directory.duplicate_role"
    category = Category.CONFLICT
    title_en = "A role with this name exists"
    title_zh = "同名角色已存在"


class UserNotFound(DirectoryError):
    """Raised by administrative operations only; authentication never reveals it."""

    code = "directory.user_not_found"
    category = Category.NOT_FOUND
    title_en = "User not found"
    title_zh = "用户不存在"


class DepartmentNotFound(DirectoryError):
    code = "directory.department_not_found"
    category = Category.NOT_FOUND
    title_en = "Department not found"
    title_zh = "部门不存在"


class GroupNotFound(DirectoryError):
    code = "directory.group_not_found"
    category = Category.NOT_FOUND
    title_en = "Group not found"
    title_zh = "组不存在"


class RoleNotFound(DirectoryError):
    code = "directory.role_not_found"
    category = Category.NOT_FOUND
    title_en = "Role not found"
    title_zh = "角色不存在"


class RoleAssignmentNotFound(DirectoryError):
    code = "directory.role_assignment_not_found"
    category = Category.NOT_FOUND
    title_en = "The user does not hold this role"
    title_zh = "用户未被授予该角色"


class DepartmentCycle(DirectoryError):
    code = "directory.department_cycle"
    category = Category.INVALID
    title_en = "The move would put a department inside itself"
    title_zh = "该移动会使部门成为其自身的下级"


class DepartmentNotEmpty(DirectoryError):
    code = "directory.department_not_empty"
    category = Category.CONFLICT
    title_en = "The department still has sub-departments, users or role assignments"
    title_zh = "部门仍有下级部门、用户或角色授权"


class RoleInUse(DirectoryError):
    code = "directory.role_in_use"
    category = Category.CONFLICT
    title_en = "The role is still granted to users"
    title_zh = "角色仍被授予用户"


class InvalidUserState(DirectoryError):
    """The action does not apply to the user as it is (unlocking a disabled user, a password for a federated one)."""

    code = "directory.invalid_state"
    category = Category.CONFLICT
    title_en = "The action does not apply to the user's current state"
    title_zh = "该操作不适用于用户的当前状态"


class InvalidCredentials(DirectoryError):
    """Authentication failed.  Always the same text, whatever the reason (the audit log has it)."""

    code = "directory.invalid_credentials"
    category = Category.UNAUTHENTICATED
    title_en = "Invalid login name or password"
    title_zh = "登录名或密码错误"

    def __init__(self) -> None:
        super().__init__("invalid login name or password", detail_zh="登录名或密码错误")


class PasswordExpired(DirectoryError):
    """The password was right but is older than ``[passwords] max_age_days``: it must be changed first."""

    code = "directory.password_expired"
    category = Category.UNAUTHENTICATED
    title_en = "The password has expired and must be changed"
    title_zh = "密码已过期，必须修改"


class FederationNotConfigured(DirectoryError):
    code = "directory.federation_not_configured"
    category = Category.INVALID
    title_en = "No such external directory is configured"
    title_zh = "未配置该外部目录"


class LDAPPublishingDisabled(DirectoryError):
    code = "directory.ldap_disabled"
    category = Category.CONFIGURATION
    title_en = "LDAP publishing is not enabled"
    title_zh = "未启用 LDAP 发布"


class PublisherBusy(DirectoryError):
    code = "directory.publisher_busy"
    category = Category.UNAVAILABLE
    title_en = "Another process is publishing the directory"
    title_zh = "另一进程正在发布目录"


class PublishIncomplete(DirectoryError):
    """Changes are still queued after a publishing run (the server is down or refused one)."""

    code = "directory.publish_incomplete"
    category = Category.UNAVAILABLE
    title_en = "Not every directory change could be published"
    title_zh = "部分目录变更未能发布"


class DirectoryDrift(DirectoryError):
    """A check found LDAP different from the database (``hengxin directory sync --full --check``)."""

    code = "directory.drift"
    category = Category.CONFLICT
    title_en = "LDAP differs from the directory"
    title_zh = "LDAP 与目录数据不一致"
