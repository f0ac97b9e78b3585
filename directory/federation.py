"""Federation: other LDAP directories users are imported from and, per user, authenticated by.

An external directory is configured in ``[[directory.federation]]`` (name,
URL, base DN, user filter, optional search identity).  A user whose
``auth_source`` is ``ldap:<name>`` has no password in Hengxin: their
password is checked by a simple bind to that directory (through
:class:`directory.ldap.LDAPDirectory`, the one python-ldap adapter).

Importing reads users (and optionally the groups that list them as
``member``) from any directory; :meth:`directory.service.DirectoryService.import_users`
stores them.  For Active Directory, map ``login`` to ``sAMAccountName`` (or
``userPrincipalName``) and filter on ``(&(objectCategory=person)(objectClass=user))``;
see ``docs/directory.md``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from core.config import FederationSettings
from directory.ldap import LDAPDirectory
from directory.ldap_mapping import AttributeMap, ImportedUser, normalize_dn
from directory.service_errors import FederationNotConfigured, InvalidDirectoryValue

ATTRIBUTE_FIELDS = frozenset(field.name for field in dataclasses.fields(AttributeMap))


def attribute_map(attributes: dict[str, str]) -> AttributeMap:
    """An :class:`AttributeMap` from ``{field: attribute}``; raises for an unknown field."""
    unknown = sorted(set(attributes) - ATTRIBUTE_FIELDS)
    if unknown:
        raise InvalidDirectoryValue(
            f"unknown attribute map fields: {', '.join(unknown)} (known: {', '.join(sorted(ATTRIBUTE_FIELDS))})",
            field="attributes",
        )
    return AttributeMap(**attributes)


@dataclasses.dataclass(frozen=True)
class ExternalGroup:
    """A group read from another directory: its name (``cn``) and its members' DNs."""

    name: str
    member_dns: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ExternalDirectoryContent:
    users: tuple[ImportedUser, ...]
    groups: tuple[ExternalGroup, ...] = ()

    def groups_of(self, user: ImportedUser) -> tuple[str, ...]:
        """Names of the groups that list ``user`` as a member (what AD shows as ``memberOf``)."""
        dn = normalize_dn(user.dn)
        return tuple(sorted(g.name for g in self.groups if dn in {normalize_dn(m) for m in g.member_dns}))


def read_directory(
    source: LDAPDirectory,
    *,
    search_filter: str,
    mapping: AttributeMap,
    with_groups: bool = False,
    group_filter: str = "(|(objectClass=groupOfNames)(objectClass=group))",
) -> ExternalDirectoryContent:
    """Users (and with ``with_groups`` the groups naming them) under the source's base DN.

    Raises the adapter's errors (``LDAPUnavailable`` for a refusing URL ...).
    """
    users = tuple(source.import_users(search_filter, mapping))
    groups: list[ExternalGroup] = []
    if with_groups:
        for entry in source.search(source.base_dn, group_filter, attributes=["cn", "member"]):
            name = entry.text("cn")
            if name:
                groups.append(ExternalGroup(name.strip(), entry.texts("member")))
    return ExternalDirectoryContent(users, tuple(groups))


class FederatedDirectories:
    """The configured external directories, opened on first use.

    ``secret`` reads a bind password from the secret store by name.
    """

    def __init__(
        self,
        configured: list[FederationSettings],
        secret: Callable[[str], str],
        *,
        network_timeout: float = 5.0,
        operation_timeout: float = 30.0,
    ) -> None:
        self._configured = {item.name: item for item in configured}
        self._secret = secret
        self.network_timeout = network_timeout
        self.operation_timeout = operation_timeout
        self._open: dict[str, LDAPDirectory] = {}
        self._lock = threading.Lock()

    def names(self) -> set[str]:
        return set(self._configured)

    def settings_of(self, name: str) -> FederationSettings:
        try:
            return self._configured[name]
        except KeyError:
            raise FederationNotConfigured(
                f"no external directory named {name!r} is configured in [[directory.federation]]",
                detail_zh=f"未在 [[directory.federation]] 中配置外部目录 {name!r}",
            ) from None

    def directory(self, name: str) -> LDAPDirectory:
        """The adapter for ``name`` (kept open); raises ``FederationNotConfigured``."""
        settings = self.settings_of(name)
        with self._lock:
            if name not in self._open:
                password = self._secret(settings.bind_password_secret) if settings.bind_password_secret else None
                self._open[name] = LDAPDirectory(
                    settings.url,
                    settings.base_dn,
                    bind_dn=settings.bind_dn or None,
                    password=password,
                    start_tls=settings.start_tls,
                    ca_file=settings.ca_file,
                    network_timeout=self.network_timeout,
                    operation_timeout=self.operation_timeout,
                    user_filter=settings.user_filter,
                )
            return self._open[name]

    def authenticate(self, name: str, login: str, password: str) -> str:
        """Check ``password`` by a bind to directory ``name``; return the user's DN there.

        Raises ``LDAPInvalidCredentials`` (wrong password, unknown or
        ambiguous login), ``LDAPUnavailable`` or ``FederationNotConfigured``.
        """
        return self.directory(name).authenticate(login, password)

    def attribute_map(self, name: str) -> AttributeMap:
        return attribute_map(self.settings_of(name).attributes)

    def close(self) -> None:
        with self._lock:
            for adapter in self._open.values():
                adapter.close()
            self._open.clear()
