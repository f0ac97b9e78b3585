"""The OpenLDAP adapter: the only module of Hengxin that imports python-ldap.

:class:`LDAPDirectory` publishes the entries built by
``directory.ldap_mapping`` to one LDAP server, reads them back, compares and
repairs them, authenticates users by simple bind, exports LDIF and reads
users from foreign directories.

Errors: every python-ldap exception is translated (``raise ... from e``) into
``directory.errors``: an unreachable or timed-out server becomes
:class:`LDAPUnavailable`, a refused bind :class:`LDAPInvalidCredentials`, a
missing entry :class:`LDAPNotFound`, missing rights
:class:`LDAPInsufficientAccess`, anything else :class:`LDAPError`.  Messages
name the operation and the DN, never a password or a hash; the server's own
diagnostic text goes to the log only.

One instance holds one connection bound as the identity it was given (the
sync identity, or anonymous) and serialises its use with a lock.  When the
server went away and came back, the next call reconnects once by itself, so
a caller that retries after :class:`LDAPUnavailable` needs no extra step.
"""

from __future__ import annotations

import enum
import io
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import ldap
import ldif
from ldap.controls import SimplePagedResultsControl
from ldap.filter import escape_filter_chars

from directory.errors import (
    LDAPConfigurationError,
    LDAPError,
    LDAPInsufficientAccess,
    LDAPInvalidCredentials,
    LDAPNotFound,
    LDAPUnavailable,
)
from directory.ldap_mapping import (
    AttributeMap,
    DirectoryLayout,
    Drift,
    Entry,
    EntryDrift,
    ImportedUser,
    PublishedCA,
    PublishedDepartment,
    PublishedGroup,
    PublishedUser,
    attribute_key,
    diff,
    dn_depth,
    encode_department_path,
    entry_differences,
    escape_dn_value,
    imported_user_from_entry,
    normalize_dn,
    parent_dn,
    parse_dn,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
Scope = Literal["base", "one", "subtree"]

_SCOPES = {"base": ldap.SCOPE_BASE, "one": ldap.SCOPE_ONELEVEL, "subtree": ldap.SCOPE_SUBTREE}
_SCHEMES = frozenset({"ldap", "ldaps", "ldapi"})
_UNAVAILABLE = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT, ldap.UNAVAILABLE, ldap.BUSY)
_REFUSED_BIND = (ldap.INVALID_CREDENTIALS, ldap.INAPPROPRIATE_AUTH, ldap.INVALID_DN_SYNTAX)


class WriteOutcome(enum.Enum):
    """What a write did to one entry."""

    ADDED = "added"
    MODIFIED = "modified"
    REPLACED = "replaced"  # deleted and added again: its structural object class had changed
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    ABSENT = "absent"  # a delete found nothing to delete


def _describe(error: ldap.LDAPError) -> tuple[str, str, int | None]:
    """(description, server info, result code) of a python-ldap error."""
    details: dict[str, Any] = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    return (
        str(details.get("desc") or type(error).__name__),
        str(details.get("info") or ""),
        details.get("result"),
    )


def _translate(error: ldap.LDAPError, operation: str, dn: str) -> LDAPError:
    """Turn a python-ldap error into the matching ``directory.errors`` leaf, with a safe message."""
    description, info, result = _describe(error)
    if info:
        logger.warning("LDAP %s of %r failed: %s (%s)", operation, dn, description, info)
    if isinstance(error, ldap.CONNECT_ERROR):
        return LDAPUnavailable(
            f"could not connect to the LDAP server during {operation}: connection or TLS handshake failed "
            "(check the address, the server certificate and the CA file)",
            detail_zh=f"执行 {operation} 时无法连接 LDAP 服务器：连接或 TLS 握手失败",
        )
    if isinstance(error, _UNAVAILABLE):
        return LDAPUnavailable(
            f"the LDAP server is unavailable ({description}) during {operation}",
            detail_zh=f"执行 {operation} 时 LDAP 服务器不可用",
        )
    if isinstance(error, _REFUSED_BIND) and operation == "bind":
        return LDAPInvalidCredentials("invalid LDAP credentials", detail_zh="LDAP 凭据无效")
    if isinstance(error, ldap.NO_SUCH_OBJECT):
        return LDAPNotFound(f"LDAP {operation}: {dn!r} or its parent does not exist", dn=dn)
    if isinstance(error, ldap.INSUFFICIENT_ACCESS | ldap.STRONG_AUTH_REQUIRED | ldap.CONFIDENTIALITY_REQUIRED):
        return LDAPInsufficientAccess(
            f"LDAP {operation} of {dn!r} refused: {description}; check the identity's rights", dn=dn
        )
    if isinstance(error, ldap.FILTER_ERROR):
        return LDAPConfigurationError(f"invalid LDAP search filter for {operation}")
    return LDAPError(f"LDAP {operation} of {dn!r} failed: {description}", dn=dn, result=result)


class _Secret:
    """Holds a password so that no repr, traceback local or vars() dump shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>" if self.value else "<none>"


def _check_url(url: str, start_tls: bool) -> None:
    urls = url.split()
    if not urls:
        raise LDAPConfigurationError("the LDAP URL is empty")
    for one in urls:
        scheme = urlsplit(one).scheme.lower()
        if scheme not in _SCHEMES:
            raise LDAPConfigurationError(f"unsupported LDAP URL scheme {scheme!r}: use ldap, ldaps or ldapi")
        if scheme == "ldaps" and start_tls:
            raise LDAPConfigurationError("StartTLS cannot be combined with an ldaps:// URL")


class LDAPDirectory:
    """One LDAP server holding the tree Hengxin publishes under ``base_dn``.

    ``bind_dn`` and ``password`` (from the secret store) are the identity to
    write with; give neither for anonymous access (reading a foreign
    directory).  ``start_tls`` upgrades an ``ldap://`` connection; with TLS
    (StartTLS or ``ldaps://``) the server certificate is always verified,
    against ``ca_file`` when given, else the system trust store.
    ``network_timeout`` bounds connecting, ``operation_timeout`` every
    request.  ``user_filter`` finds a login for :meth:`authenticate`.

    Nothing is contacted until the first call.  Raises
    ``LDAPConfigurationError`` for an unusable URL or credential combination.
    """

    def __init__(
        self,
        url: str,
        base_dn: str,
        *,
        bind_dn: str | None = None,
        password: str | None = None,
        start_tls: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        network_timeout: float = 5.0,
        operation_timeout: float = 30.0,
        layout: DirectoryLayout | None = None,
        user_filter: str = "(uid={login})",
        page_size: int = 500,
    ) -> None:
        _check_url(url, start_tls)
        if (bind_dn is None) != (password is None):
            raise LDAPConfigurationError("give both a bind DN and a password, or neither")
        if password == "":
            # An empty password is an unauthenticated bind (RFC 4513 5.1.2): it
            # would "succeed" as anonymous.
            raise LDAPConfigurationError("the LDAP bind password must not be empty")
        if "{login}" not in user_filter:
            raise LDAPConfigurationError("user_filter must contain {login}")
        self.url = url
        self.base_dn = base_dn
        self.bind_dn = bind_dn
        self._password = _Secret(password)
        self.start_tls = start_tls
        self.ca_file = os.fspath(ca_file) if ca_file is not None else None
        self.network_timeout = network_timeout
        self.operation_timeout = operation_timeout
        self.layout = layout or DirectoryLayout(base_dn)
        self.user_filter = user_filter
        self.page_size = page_size
        self._connection: Any = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"LDAPDirectory(url={self.url!r}, base_dn={self.base_dn!r}, bind_dn={self.bind_dn!r})"

    def __enter__(self) -> LDAPDirectory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Connections -----------------------------------------------------------

    def _open(self, bind_dn: str | None, password: str | None) -> Any:
        """A new connection, TLS set up and bound; raises the translated error."""
        connection = None
        try:
            connection = ldap.initialize(self.url)
            connection.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
            connection.set_option(ldap.OPT_REFERRALS, 0)
            connection.set_option(ldap.OPT_NETWORK_TIMEOUT, self.network_timeout)
            connection.set_option(ldap.OPT_TIMEOUT, self.operation_timeout)
            if self.start_tls or any(u.lower().startswith("ldaps:") for u in self.url.split()):
                connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
                if hasattr(ldap, "OPT_X_TLS_PROTOCOL_MIN"):
                    connection.set_option(ldap.OPT_X_TLS_PROTOCOL_MIN, ldap.OPT_X_TLS_PROTOCOL_TLS1_2)
                if self.ca_file:
                    connection.set_option(ldap.OPT_X_TLS_CACERTFILE, self.ca_file)
                connection.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # must come after the TLS options
            if self.start_tls:
                connection.start_tls_s()
            connection.simple_bind_s(bind_dn or "", password or "")
            return connection
        except ldap.LDAPError as e:
            if connection is not None:
                _quietly_unbind(connection)
            raise _translate(e, "bind", bind_dn or "") from e

    def _drop(self) -> None:
        if self._connection is not None:
            _quietly_unbind(self._connection)
            self._connection = None

    def close(self) -> None:
        """Unbind and forget the connection; the next call opens a new one."""
        with self._lock:
            self._drop()

    def _call(self, operation: str, dn: str, function: Callable[[Any], T]) -> T:
        """Run ``function(connection)``; reconnect once if a kept connection has gone stale."""
        with self._lock:
            for attempt in (1, 2):
                reused = self._connection is not None
                if not reused:
                    self._connection = self._open(self.bind_dn, self._password.value)
                try:
                    return function(self._connection)
                except ldap.SERVER_DOWN as e:
                    self._drop()
                    if not reused or attempt == 2:
                        raise _translate(e, operation, dn) from e
                    logger.info("LDAP connection to %s lost; reconnecting", self.url)
                except ldap.LDAPError as e:
                    if isinstance(e, _UNAVAILABLE):
                        self._drop()
                    raise _translate(e, operation, dn) from e
        raise AssertionError("unreachable")  # pragma: no cover

    # Reading ---------------------------------------------------------------

    def _search(
        self, connection: Any, base: str, scope: Scope, search_filter: str, attributes: Sequence[str] | None
    ) -> list[Entry]:
        attribute_list = list(attributes) if attributes is not None else None
        if scope == "base":
            results = connection.search_ext_s(
                base, _SCOPES[scope], search_filter, attribute_list, timeout=self.operation_timeout
            )
            return [Entry(dn, {k: tuple(v) for k, v in attrs.items()}) for dn, attrs in results if dn is not None]
        entries: list[Entry] = []
        control = SimplePagedResultsControl(criticality=False, size=self.page_size, cookie=b"")
        while True:
            message_id = connection.search_ext(
                base,
                _SCOPES[scope],
                search_filter,
                attribute_list,
                serverctrls=[control],
                timeout=self.operation_timeout,
            )
            _, results, _, controls = connection.result3(message_id, timeout=self.operation_timeout)
            entries.extend(
                Entry(dn, {k: tuple(v) for k, v in attrs.items()}) for dn, attrs in results if dn is not None
            )
            cookies = [c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType]
            if not cookies or not cookies[0]:
                return entries
            control.cookie = cookies[0]

    def search(
        self,
        base: str,
        search_filter: str = "(objectClass=*)",
        *,
        scope: Scope = "subtree",
        attributes: Sequence[str] | None = None,
    ) -> list[Entry]:
        """Entries matching ``search_filter`` (all pages); ``[]`` when ``base`` does not exist.

        ``attributes`` None means all user attributes.  The caller escapes
        values put into the filter.  Raises ``LDAPUnavailable``,
        ``LDAPConfigurationError`` (bad filter) or ``LDAPError``.
        """

        def run(connection: Any) -> list[Entry]:
            try:
                return self._search(connection, base, scope, search_filter, attributes)
            except ldap.NO_SUCH_OBJECT:
                return []

        return self._call("search", base, run)

    def read_entry(self, dn: str) -> Entry | None:
        """The entry at ``dn`` with all user attributes it may read, or None."""
        entries = self.search(dn, scope="base")
        return entries[0] if entries else None

    def search_user(self, login: str) -> Entry | None:
        """The published entry of ``login``, or None if it is not published."""
        return self.read_entry(self.layout.user_dn(login))

    def check(self) -> None:
        """Readiness: the server answers, the identity binds and the base entry exists.

        Raises ``LDAPUnavailable``, ``LDAPInvalidCredentials`` or ``LDAPNotFound``.
        """

        def run(connection: Any) -> None:
            connection.search_ext_s(
                self.base_dn, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"], timeout=self.network_timeout
            )

        self._call("check", self.base_dn, run)

    def read_all(self) -> tuple[Entry, ...]:
        """Snapshot of the managed subtrees (the four containers and everything below)."""
        entries: list[Entry] = []
        for container in self.layout.container_dns:
            entries.extend(self.search(container))
        return tuple(entries)

    # Writing ---------------------------------------------------------------

    def _add(self, connection: Any, entry: Entry) -> None:
        connection.add_s(entry.dn, [(name, list(values)) for name, values in entry.attributes.items()])

    def _modify(self, connection: Any, entry: Entry, current: Entry) -> WriteOutcome:
        differences = entry_differences(entry, current)
        if not differences:
            return WriteOutcome.UNCHANGED
        modifications = [
            (ldap.MOD_REPLACE, d.name, list(d.expected)) if d.expected else (ldap.MOD_DELETE, d.name, None)
            for d in differences
        ]
        try:
            connection.modify_s(entry.dn, modifications)
            return WriteOutcome.MODIFIED
        except (ldap.OBJECT_CLASS_VIOLATION, ldap.NO_OBJECT_CLASS_MODS):
            if not any(attribute_key(d.name) == "objectclass" for d in differences):
                raise
            # The structural class differs: only delete and add can change it.
            connection.delete_s(entry.dn)
            self._add(connection, entry)
            return WriteOutcome.REPLACED

    def apply_entry(self, entry: Entry) -> WriteOutcome:
        """Make the entry at ``entry.dn`` hold exactly ``entry``'s attributes.

        Adds it when missing; otherwise replaces differing attributes and
        deletes user attributes ``entry`` does not have (operational
        attributes such as ppolicy state are left alone).  Idempotent.
        Raises ``LDAPNotFound`` when the parent does not exist.
        """

        def run(connection: Any) -> WriteOutcome:
            current = self._read(connection, entry.dn)
            if current is None:
                try:
                    self._add(connection, entry)
                    return WriteOutcome.ADDED
                except ldap.ALREADY_EXISTS:
                    current = self._read(connection, entry.dn)
                    if current is None:
                        raise
            return self._modify(connection, entry, current)

        return self._call("write", entry.dn, run)

    def _read(self, connection: Any, dn: str) -> Entry | None:
        try:
            entries = self._search(connection, dn, "base", "(objectClass=*)", None)
        except ldap.NO_SUCH_OBJECT:
            return None
        return entries[0] if entries else None

    def delete_entry(self, dn: str) -> WriteOutcome:
        """Delete the leaf entry ``dn``; ``ABSENT`` if it did not exist.

        Raises ``LDAPError`` (``notAllowedOnNonLeaf``) if it has children.
        """

        def run(connection: Any) -> WriteOutcome:
            try:
                connection.delete_s(dn)
                return WriteOutcome.DELETED
            except ldap.NO_SUCH_OBJECT:
                return WriteOutcome.ABSENT

        return self._call("delete", dn, run)

    def ensure_base(self) -> tuple[str, ...]:
        """Create the suffix entry (if the identity may) and the four containers if missing.

        Existing entries are not modified.  Returns the DNs created.  Raises
        ``LDAPNotFound`` if the suffix is missing and its naming attribute is
        not ``dc``, ``o`` or ``ou``; ``LDAPInsufficientAccess`` if the
        identity may not create it.
        """
        created: list[str] = []
        if self.read_entry(self.base_dn) is None:
            self.apply_entry(_suffix_entry(self.base_dn))
            created.append(self.base_dn)
        for container in self.layout.container_entries():
            if self.read_entry(container.dn) is None:
                self.apply_entry(container)
                created.append(container.dn)
        return tuple(created)

    def upsert_department(self, department: PublishedDepartment) -> WriteOutcome:
        """Publish a department; its parent must already be published (else ``LDAPNotFound``)."""
        return self.apply_entry(self.layout.department_entry(department))

    def upsert_user(self, user: PublishedUser) -> WriteOutcome:
        """Publish a user: attributes, password (absent when locked) and certificates."""
        return self.apply_entry(self.layout.user_entry(user))

    def upsert_group(self, group: PublishedGroup) -> WriteOutcome:
        """Publish a group with its members (itself as sole member when empty)."""
        return self.apply_entry(self.layout.group_entry(group))

    def upsert_ca(self, ca: PublishedCA) -> WriteOutcome:
        """Publish a CA certificate and its CRL (the CRL attribute is removed when ``crl`` is None)."""
        return self.apply_entry(self.layout.ca_entry(ca))

    def delete_department(self, path: Sequence[str]) -> WriteOutcome:
        """Delete a department with no sub-departments (``LDAPError`` otherwise)."""
        return self.delete_entry(self.layout.department_dn(path))

    def delete_user(self, login: str) -> WriteOutcome:
        """Delete a user and remove it from every published group."""
        dn = self.layout.user_dn(login)
        outcome = self.delete_entry(dn)
        self._replace_member(dn, None)
        return outcome

    def delete_group(self, name: str) -> WriteOutcome:
        return self.delete_entry(self.layout.group_dn(name))

    def delete_ca(self, name: str) -> WriteOutcome:
        return self.delete_entry(self.layout.ca_dn(name))

    def _replace_member(self, old_dn: str, new_dn: str | None) -> None:
        """Replace (or with None remove) ``old_dn`` in the members of every group."""
        groups = self.search(self.layout.groups_dn, f"(member={escape_filter_chars(old_dn)})", attributes=["member"])
        for group in groups:
            members = [m for m in group.values("member") if normalize_dn(m.decode()) != normalize_dn(old_dn)]
            if new_dn is not None:
                members.append(new_dn.encode())
            if not members:
                members = [group.dn.encode()]

            def run(connection: Any, group: Entry = group, members: list[bytes] = members) -> None:
                connection.modify_s(group.dn, [(ldap.MOD_REPLACE, "member", members)])

            self._call("modify", group.dn, run)

    def rename_user(self, old_login: str, new_login: str) -> None:
        """Change a user's login: the entry is renamed (modrdn) and group memberships follow.

        Raises ``LDAPNotFound`` if ``old_login`` is not published, ``LDAPError``
        if ``new_login`` already is.
        """
        old_dn, new_dn = self.layout.user_dn(old_login), self.layout.user_dn(new_login)

        def run(connection: Any) -> None:
            connection.rename_s(old_dn, f"uid={escape_dn_value(new_login)}", None, 1)

        self._call("rename", old_dn, run)
        self._replace_member(old_dn, new_dn)

    def move_department(self, old_path: Sequence[str], new_path: Sequence[str]) -> None:
        """Rename and/or move a department with its sub-departments (modrdn with a new superior).

        Users of the department and its sub-departments get their ``ou`` and
        ``departmentNumber`` rewritten.  The new parent must exist.  Raises
        ``LDAPNotFound`` or ``LDAPError``.
        """
        old_dn, new_dn = self.layout.department_dn(old_path), self.layout.department_dn(new_path)
        new_rdn = f"ou={escape_dn_value(new_path[-1])}"
        new_superior = parent_dn(new_dn)
        moved = normalize_dn(parent_dn(old_dn)) != normalize_dn(new_superior)

        def run(connection: Any) -> None:
            connection.rename_s(old_dn, new_rdn, new_superior if moved else None, 1)

        self._call("rename", old_dn, run)

        old_prefix, new_prefix = encode_department_path(old_path), encode_department_path(new_path)
        escaped = escape_filter_chars(old_prefix)
        users = self.search(
            self.layout.people_dn,
            f"(|(departmentNumber={escaped})(departmentNumber={escaped}/*))",
            attributes=["departmentNumber", "ou"],
        )
        for user in users:
            number = user.text("departmentNumber") or ""
            if number.casefold() == old_prefix.casefold():
                changes = [
                    (ldap.MOD_REPLACE, "departmentNumber", [new_prefix.encode()]),
                    (ldap.MOD_REPLACE, "ou", [new_path[-1].encode()]),
                ]
            elif number.casefold().startswith(old_prefix.casefold() + "/"):
                changes = [(ldap.MOD_REPLACE, "departmentNumber", [(new_prefix + number[len(old_prefix) :]).encode()])]
            else:
                continue

            def update(connection: Any, dn: str = user.dn, changes: list = changes) -> None:
                connection.modify_s(dn, changes)

            self._call("modify", user.dn, update)

    def clear_lockout(self, login: str) -> bool:
        """Remove a ppolicy lockout (``pwdAccountLockedTime``) from a user; False if none was set.

        Needs ``manage`` on the ppolicy attributes (the shipped ACLs give it to
        the sync identity).  Raises ``LDAPInsufficientAccess`` otherwise.
        """
        dn = self.layout.user_dn(login)

        def run(connection: Any) -> bool:
            try:
                connection.modify_s(dn, [(ldap.MOD_DELETE, "pwdAccountLockedTime", None)])
                return True
            except ldap.NO_SUCH_ATTRIBUTE:
                return False

        return self._call("modify", dn, run)

    # Reconciliation ---------------------------------------------------------

    def reconcile(self, expected: Iterable[Entry], *, apply: bool = True) -> Drift:
        """Compare the managed subtrees with ``expected`` and, if ``apply``, repair them.

        Missing entries are added parents first, differing ones rewritten,
        extra ones deleted children first.  Returns the drift found before
        repairing.  The identity must be able to read ``userPassword`` (the
        shipped ACLs give the sync identity write, which includes read);
        otherwise every published hash shows up as drift.  Raises the adapter's errors; a repair stopped half way is
        completed by the next reconcile.
        """
        drift = diff(expected, self.read_all())
        if not apply or not drift:
            return drift
        for entry in drift.missing:
            self.apply_entry(entry)
        for change in drift.changed:
            self._repair(change)
        for entry in drift.extra:
            self.delete_entry(entry.dn)
        return drift

    def _repair(self, change: EntryDrift) -> None:
        def run(connection: Any) -> WriteOutcome:
            return self._modify(connection, change.expected, change.actual)

        self._call("write", change.dn, run)

    # Authentication ---------------------------------------------------------

    def authenticate(self, login: str, password: str) -> str:
        """Verify ``password`` for ``login`` by a simple bind; return the user's DN.

        The login is looked up with ``user_filter`` under the base DN (as this
        instance's identity), then bound on a separate connection, so a
        lockout by ppolicy and the server's own checks apply.  Raises
        ``LDAPInvalidCredentials`` for a wrong or empty password, an unknown
        or ambiguous login or a locked account, all alike;
        ``LDAPUnavailable`` if the server cannot be reached.
        """
        if not password:
            raise LDAPInvalidCredentials("invalid LDAP credentials", detail_zh="LDAP 凭据无效")
        search_filter = self.user_filter.format(login=escape_filter_chars(login))
        matches = self.search(self.base_dn, search_filter, attributes=["1.1"])
        if len(matches) != 1:
            raise LDAPInvalidCredentials("invalid LDAP credentials", detail_zh="LDAP 凭据无效")
        return self.authenticate_dn(matches[0].dn, password)

    def authenticate_dn(self, dn: str, password: str) -> str:
        """Verify ``password`` by a simple bind as ``dn`` on a new connection; return ``dn``.

        Raises ``LDAPInvalidCredentials`` (also for an empty password, which
        LDAP would accept as an anonymous bind) or ``LDAPUnavailable``.
        """
        if not password or not dn:
            raise LDAPInvalidCredentials("invalid LDAP credentials", detail_zh="LDAP 凭据无效")
        connection = self._open(dn, password)
        _quietly_unbind(connection)
        return dn

    # Export and federation ---------------------------------------------------

    def export_ldif(self) -> str:
        """Everything under the base DN that the identity can read, as LDIF, parents first.

        The text can be loaded back with ``ldapadd`` into an empty database
        with the same suffix.  It contains password hashes when the identity
        may read them: treat it as a secret.
        """
        entries = self.search(self.base_dn)
        entries.sort(key=lambda e: (dn_depth(e.dn), normalize_dn(e.dn)))
        output = io.StringIO()
        output.write(f"# Hengxin LDIF export of {self.base_dn}\n")
        writer = ldif.LDIFWriter(output, cols=76)
        for entry in entries:
            writer.unparse(entry.dn, {name: list(values) for name, values in entry.attributes.items()})
        return output.getvalue()

    def import_users(
        self, search_filter: str = "(objectClass=inetOrgPerson)", attribute_map: AttributeMap | None = None
    ) -> list[ImportedUser]:
        """Users found under the base DN by ``search_filter``, mapped with ``attribute_map``.

        Entries without a login value are skipped (and logged).  Sorted by login.
        """
        mapping = attribute_map or AttributeMap()
        users = []
        for entry in self.search(self.base_dn, search_filter, attributes=mapping.attribute_names()):
            user = imported_user_from_entry(entry, mapping)
            if user is None:
                logger.warning("federation import: %r has no %s value and is skipped", entry.dn, mapping.login)
                continue
            users.append(user)
        return sorted(users, key=lambda u: u.login)


def import_users(
    url: str,
    base_dn: str,
    *,
    search_filter: str = "(objectClass=inetOrgPerson)",
    attribute_map: AttributeMap | None = None,
    bind_dn: str | None = None,
    password: str | None = None,
    start_tls: bool = False,
    ca_file: str | os.PathLike[str] | None = None,
    network_timeout: float = 5.0,
    operation_timeout: float = 30.0,
) -> list[ImportedUser]:
    """Read users from another directory (federation import) over a short-lived connection.

    See :meth:`LDAPDirectory.import_users`; raises the adapter's errors.
    """
    with LDAPDirectory(
        url,
        base_dn,
        bind_dn=bind_dn,
        password=password,
        start_tls=start_tls,
        ca_file=ca_file,
        network_timeout=network_timeout,
        operation_timeout=operation_timeout,
    ) as source:
        return source.import_users(search_filter, attribute_map)


def _suffix_entry(base_dn: str) -> Entry:
    rdns = parse_dn(base_dn)
    attribute, value = rdns[0][0]
    kind = attribute.lower()
    if kind == "dc":
        return Entry(
            base_dn,
            {"objectClass": (b"top", b"dcObject", b"organization"), "dc": (value.encode(),), "o": (value.encode(),)},
        )
    if kind == "o":
        return Entry(base_dn, {"objectClass": (b"top", b"organization"), "o": (value.encode(),)})
    if kind == "ou":
        return Entry(base_dn, {"objectClass": (b"top", b"organizationalUnit"), "ou": (value.encode(),)})
    raise LDAPNotFound(f"the base entry {base_dn!r} does not exist and cannot be created by Hengxin")


def _quietly_unbind(connection: Any) -> None:
    try:
        connection.unbind_s()
    except ldap.LDAPError:
        logger.debug("unbind failed", exc_info=True)
