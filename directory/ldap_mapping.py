"""What Hengxin publishes to LDAP, as pure functions from domain values to entries.

Nothing here talks to a server or imports python-ldap; ``directory/ldap.py``
sends the entries built here.  The directory service converts its own
records to the ``Published*`` values below.

DN layout under a configurable base DN (``dc=gov,dc=example``)::

    ou=departments,<base>                     organizationalUnit
        ou=省政府,ou=departments,<base>        one nested organizationalUnit per department
            ou=信息中心,ou=省政府,...
    ou=people,<base>
        uid=<login>,ou=people,<base>          inetOrgPerson, every user, flat
    ou=groups,<base>
        cn=<name>,ou=groups,<base>            groupOfNames
    ou=cas,<base>
        cn=<name>,ou=cas,<base>               applicationProcess + pkiCA

Rules (documented for the operators of consuming applications):

- Users live flat under ``ou=people``, not under their department: a user's
  DN is what applications store as bind DN and what groups list as
  ``member``, so it must not change when the user moves to another
  department or a department is renamed.  The department shows in the
  entry: ``ou`` holds the department's name and ``departmentNumber`` its full
  path, names joined by ``/`` from the top (``省政府/信息中心``; a ``/`` or
  ``\\`` inside a name is escaped with ``\\``).  ``(departmentNumber=省政府/*)``
  selects a whole subtree.
- A department's DN is its name path; its Hengxin ``id`` is not published.
- ``groupOfNames`` needs at least one ``member``: an empty group lists its
  own DN as its only member.  Consumers must ignore a member equal to the
  group's DN.
- ``mail`` is IA5String: an address whose domain alone is non-ASCII is
  published with the domain in IDNA (punycode) form; an address with a
  non-ASCII local part cannot be expressed and is left out, with a warning
  logged.  ``telephoneNumber`` accepts PrintableString characters only; other
  numbers are left out with a warning.
- ``userPassword`` is ``{ARGON2}`` + the argon2id hash, verified by slapd's
  argon2 module.  A locked, disabled or expired user, or one without a
  password, is published without ``userPassword``: every simple bind fails.
- ``sn`` is required by ``person``: when the surname is unknown the display
  name is used.
"""

from __future__ import annotations

import logging
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from directory.errors import InvalidPublishedValue

logger = logging.getLogger(__name__)

Values = tuple[bytes, ...]

# ---------------------------------------------------------------------------
# Distinguished names (RFC 4514), without python-ldap.

_DN_SPECIAL = set(',+"\\<>;=')
_HEX = set("0123456789abcdefABCDEF")


def escape_dn_value(value: str) -> str:
    """Escape an attribute value for use in an RDN, as RFC 4514 section 2.4 requires."""
    out: list[str] = []
    for index, char in enumerate(value):
        if char in _DN_SPECIAL or (char == "#" and index == 0) or (char == " " and index in (0, len(value) - 1)):
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


RDN = tuple[tuple[str, str], ...]


def parse_dn(dn: str) -> tuple[RDN, ...]:
    """Split a string DN into RDNs of ``(attribute type, value)`` pairs, unescaping values.

    Accepts RFC 4514 strings and the spaces around separators that older
    servers print.  Hex-encoded (``#04...``) values are returned as written.
    Raises ``InvalidPublishedValue`` for a malformed DN.
    """
    rdns: list[RDN] = []
    if not dn.strip():
        return ()
    position = 0
    length = len(dn)
    current: list[tuple[str, str]] = []
    while position <= length:
        # attribute type
        equals = dn.find("=", position)
        if equals < 0:
            raise InvalidPublishedValue(f"malformed DN {dn!r}", field="dn")
        attribute = dn[position:equals].strip()
        if not attribute or any(c in attribute for c in ',+\\"'):
            raise InvalidPublishedValue(f"malformed DN {dn!r}", field="dn")
        position = equals + 1
        while position < length and dn[position] == " ":
            position += 1
        raw = bytearray()
        trailing_spaces = 0
        if position < length and dn[position] == "#":
            end = position
            while end < length and dn[end] not in ",+":
                end += 1
            raw.extend(dn[position:end].strip().encode("utf-8"))
            position = end
        else:
            while position < length and dn[position] not in ",+":
                char = dn[position]
                if char == "\\":
                    if position + 1 >= length:
                        raise InvalidPublishedValue(f"malformed DN {dn!r}", field="dn")
                    pair = dn[position + 1 : position + 3]
                    if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                        raw.append(int(pair, 16))
                        position += 3
                    else:
                        raw.extend(dn[position + 1].encode("utf-8"))
                        position += 2
                    trailing_spaces = 0
                    continue
                if char == " ":
                    trailing_spaces += 1
                else:
                    trailing_spaces = 0
                raw.extend(char.encode("utf-8"))
                position += 1
            if trailing_spaces:
                del raw[-trailing_spaces:]
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidPublishedValue(f"malformed DN {dn!r}", field="dn") from e
        current.append((attribute, value))
        if position >= length:
            rdns.append(tuple(current))
            break
        separator = dn[position]
        position += 1
        if separator == ",":
            rdns.append(tuple(current))
            current = []
        while position < length and dn[position] == " ":
            position += 1
    return tuple(rdns)


def format_dn(rdns: Iterable[RDN]) -> str:
    """Join RDNs into a string DN, escaping values."""
    return ",".join("+".join(f"{attribute}={escape_dn_value(value)}" for attribute, value in rdn) for rdn in rdns)


def normalize_dn(dn: str) -> str:
    """Return a canonical form of ``dn`` for comparisons.

    Attribute types and values are case-folded (every naming attribute
    Hengxin uses, ``dc``/``ou``/``uid``/``cn``, matches case-insensitively),
    multi-valued RDNs are sorted and escaping is made uniform.
    """
    return format_dn(
        tuple(sorted((attribute.lower(), value.casefold()) for attribute, value in rdn)) for rdn in parse_dn(dn)
    )


def dn_is_within(dn: str, base: str) -> bool:
    """Whether ``dn`` is ``base`` itself or an entry below it."""
    entry, parent = parse_dn(normalize_dn(dn)), parse_dn(normalize_dn(base))
    return len(entry) >= len(parent) and entry[len(entry) - len(parent) :] == parent


def dn_depth(dn: str) -> int:
    """Number of RDNs in ``dn``."""
    return len(parse_dn(dn))


def parent_dn(dn: str) -> str:
    """The DN of the entry that holds ``dn`` (empty for a single RDN)."""
    return format_dn(parse_dn(dn)[1:])


# ---------------------------------------------------------------------------
# Entries.


def attribute_key(name: str) -> str:
    """Canonical attribute description for comparisons.

    Case-folded, and without the ``;binary`` transfer option, which selects an
    encoding, not a different attribute (RFC 4522).
    """
    parts = [part for part in name.lower().split(";") if part != "binary"]
    return ";".join(parts)


_REDACTED_ATTRIBUTES = frozenset({"userpassword"})
_DN_VALUED_ATTRIBUTES = frozenset({"member", "uniquemember", "seealso", "owner", "manager", "secretary"})
_CASE_INSENSITIVE_ATTRIBUTES = frozenset({"objectclass"})


@dataclass(frozen=True, eq=False)
class Entry:
    """One LDAP entry: a DN and its attributes, each a tuple of raw values.

    Attribute names keep the spelling they are published with
    (``userCertificate;binary``); look values up with :meth:`values`, which
    ignores case and the ``;binary`` option.  ``repr`` hides password values.
    Equality compares normalised DNs and values as :func:`diff` does.
    """

    dn: str
    attributes: Mapping[str, Values] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cleaned: dict[str, Values] = {}
        for name, values in self.attributes.items():
            if isinstance(values, bytes | str):
                values = (values,)
            encoded = tuple(v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values)
            if encoded:
                cleaned[name] = encoded
        object.__setattr__(self, "attributes", types.MappingProxyType(cleaned))

    def values(self, name: str) -> Values:
        """All values of attribute ``name`` (case-insensitive, ``;binary`` ignored); ``()`` if absent."""
        key = attribute_key(name)
        for attribute, values in self.attributes.items():
            if attribute_key(attribute) == key:
                return values
        return ()

    def text(self, name: str) -> str | None:
        """The first value of ``name`` decoded as UTF-8, or None if absent."""
        values = self.values(name)
        return values[0].decode("utf-8", errors="replace") if values else None

    def texts(self, name: str) -> tuple[str, ...]:
        """Every value of ``name`` decoded as UTF-8."""
        return tuple(value.decode("utf-8", errors="replace") for value in self.values(name))

    @property
    def normalized_dn(self) -> str:
        return normalize_dn(self.dn)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return self.normalized_dn == other.normalized_dn and not entry_differences(self, other)

    def __hash__(self) -> int:
        return hash(self.normalized_dn)

    def __repr__(self) -> str:
        shown = {
            name: (f"<{len(values)} redacted>" if attribute_key(name) in _REDACTED_ATTRIBUTES else values)
            for name, values in self.attributes.items()
        }
        return f"Entry(dn={self.dn!r}, attributes={shown!r})"


# ---------------------------------------------------------------------------
# Published values.


def _as_tuple(value: Iterable[object] | None, field_name: str) -> tuple:
    # A lone string or bytes value would silently become a tuple of characters.
    if isinstance(value, str | bytes):
        raise InvalidPublishedValue(f"{field_name} must be a sequence, not a single value", field=field_name)
    return tuple(value) if value is not None else ()


@dataclass(frozen=True)
class PublishedDepartment:
    """A department as published: a nested ``organizationalUnit``.

    ``parent_path`` names the ancestors from the top (``("省政府",)``); ``id``
    is Hengxin's identifier, kept for the caller's bookkeeping and not
    published.
    """

    id: str
    name: str
    parent_path: Sequence[str] = ()
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parent_path", _as_tuple(self.parent_path, "parent_path"))

    @property
    def path(self) -> tuple[str, ...]:
        """Names from the top department down to this one."""
        return (*self.parent_path, self.name)


@dataclass(frozen=True)
class PublishedUser:
    """A user as published: an ``inetOrgPerson`` under ``ou=people``.

    ``password_hash`` is an argon2id PHC string (``$argon2id$v=19$...``) or
    None; ``locked`` covers locked, disabled and expired accounts.
    ``certificates`` are DER-encoded.
    """

    login: str
    display_name: str
    given_name: str | None = None
    surname: str | None = None
    email: str | None = None
    phone: str | None = None
    department_path: Sequence[str] = ()
    password_hash: str | None = None
    locked: bool = False
    certificates: Sequence[bytes] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "department_path", _as_tuple(self.department_path, "department_path"))
        object.__setattr__(self, "certificates", tuple(bytes(c) for c in _as_tuple(self.certificates, "certificates")))

    def __repr__(self) -> str:
        hidden = "<set>" if self.password_hash else None
        return (
            f"PublishedUser(login={self.login!r}, display_name={self.display_name!r}, "
            f"department_path={self.department_path!r}, password_hash={hidden}, locked={self.locked}, "
            f"certificates={len(self.certificates)})"
        )


@dataclass(frozen=True)
class PublishedGroup:
    """A group as published: a ``groupOfNames`` whose members are users' DNs."""

    name: str
    members: Sequence[str] = ()
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", _as_tuple(self.members, "members"))


@dataclass(frozen=True)
class PublishedCA:
    """A certificate authority as published: ``cACertificate`` and, when known, its latest CRL."""

    name: str
    certificate: bytes
    crl: bytes | None = None


# ---------------------------------------------------------------------------
# Value rules.

_PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def publishable_mail(email: str | None, *, login: str = "") -> str | None:
    """The ``mail`` value for ``email``, or None when it cannot be expressed in IA5String.

    ASCII addresses are kept as they are.  A non-ASCII domain with an ASCII
    local part is converted to IDNA (``张@例子.中国`` is not, ``li@例子.中国``
    becomes ``li@xn--fsqu00a.xn--fiqs8s``).  A non-ASCII local part, a domain
    IDNA refuses or a value without ``@`` yields None and a warning naming
    the login (not the address).
    """
    if email is None or not email.strip():
        return None
    address = email.strip()
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        logger.warning("mail of %r is not an address and is not published", login)
        return None
    if not local.isascii():
        logger.warning("mail of %r has a non-ASCII local part; LDAP mail is IA5String: not published", login)
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        logger.warning("mail domain of %r cannot be converted to IDNA: not published", login)
        return None
    return f"{local}@{ascii_domain}"


def publishable_phone(phone: str | None, *, login: str = "") -> str | None:
    """The ``telephoneNumber`` value, or None (with a warning) if it is not PrintableString."""
    if phone is None or not phone.strip():
        return None
    number = phone.strip()
    if not set(number) <= _PRINTABLE:
        logger.warning("telephone number of %r has characters LDAP does not accept: not published", login)
        return None
    return number


def encode_department_path(path: Sequence[str]) -> str:
    """Join department names with ``/``, escaping ``\\`` and ``/`` inside names with ``\\``."""
    return "/".join(name.replace("\\", "\\\\").replace("/", "\\/") for name in path)


def _require_text(value: str | None, field_name: str) -> str:
    if value is None or not value.strip() or value != value.strip():
        raise InvalidPublishedValue(
            f"{field_name} must be non-empty without leading or trailing spaces", field=field_name
        )
    if any(ord(char) < 0x20 for char in value):
        raise InvalidPublishedValue(f"{field_name} must not contain control characters", field=field_name)
    return value


def _require_der(value: bytes, field_name: str) -> bytes:
    # A DER SEQUENCE starts with 0x30; this catches PEM text passed by mistake.
    if not value or value[0] != 0x30:
        raise InvalidPublishedValue(f"{field_name} must be DER-encoded", field=field_name)
    return value


_ARGON2ID = re.compile(r"^\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


def _require_argon2id(value: str) -> str:
    if not _ARGON2ID.match(value):
        raise InvalidPublishedValue("password_hash must be an argon2id PHC string", field="password_hash")
    return value


# ---------------------------------------------------------------------------
# The layout.


@dataclass(frozen=True)
class DirectoryLayout:
    """Where each published value lives under ``base_dn`` and what its entry contains.

    Raises ``InvalidPublishedValue`` at construction for an empty or malformed
    base DN, and from the builders for values that cannot be published.
    """

    base_dn: str
    departments_ou: str = "departments"
    people_ou: str = "people"
    groups_ou: str = "groups"
    cas_ou: str = "cas"

    def __post_init__(self) -> None:
        if not parse_dn(self.base_dn):
            raise InvalidPublishedValue("the base DN must not be empty", field="base_dn")

    # Containers -------------------------------------------------------------

    def _container(self, name: str) -> str:
        return f"ou={escape_dn_value(name)},{self.base_dn}"

    @property
    def departments_dn(self) -> str:
        return self._container(self.departments_ou)

    @property
    def people_dn(self) -> str:
        return self._container(self.people_ou)

    @property
    def groups_dn(self) -> str:
        return self._container(self.groups_ou)

    @property
    def cas_dn(self) -> str:
        return self._container(self.cas_ou)

    @property
    def container_dns(self) -> tuple[str, ...]:
        """The four subtrees Hengxin owns; everything below them is managed."""
        return (self.departments_dn, self.people_dn, self.groups_dn, self.cas_dn)

    def container_entries(self) -> tuple[Entry, ...]:
        """The ``organizationalUnit`` entries that hold everything Hengxin publishes."""
        return tuple(
            Entry(dn, {"objectClass": (b"top", b"organizationalUnit"), "ou": (name.encode(),)})
            for dn, name in zip(
                self.container_dns,
                (self.departments_ou, self.people_ou, self.groups_ou, self.cas_ou),
                strict=True,
            )
        )

    # DNs -------------------------------------------------------------------

    def department_dn(self, path: Sequence[str]) -> str:
        """DN of the department named by ``path`` (top first)."""
        if not path:
            raise InvalidPublishedValue("a department path must name at least one department", field="path")
        rdns = ",".join(f"ou={escape_dn_value(_require_text(name, 'department name'))}" for name in reversed(path))
        return f"{rdns},{self.departments_dn}"

    def user_dn(self, login: str) -> str:
        return f"uid={escape_dn_value(_require_text(login, 'login'))},{self.people_dn}"

    def group_dn(self, name: str) -> str:
        return f"cn={escape_dn_value(_require_text(name, 'group name'))},{self.groups_dn}"

    def ca_dn(self, name: str) -> str:
        return f"cn={escape_dn_value(_require_text(name, 'ca name'))},{self.cas_dn}"

    # Entries ---------------------------------------------------------------

    def department_entry(self, department: PublishedDepartment) -> Entry:
        attributes: dict[str, Values] = {
            "objectClass": (b"top", b"organizationalUnit"),
            "ou": (_require_text(department.name, "department name").encode(),),
        }
        if department.description:
            attributes["description"] = (department.description.encode(),)
        return Entry(self.department_dn(department.path), attributes)

    def user_entry(self, user: PublishedUser) -> Entry:
        login = _require_text(user.login, "login")
        display_name = _require_text(user.display_name, "display_name")
        attributes: dict[str, Values] = {
            "objectClass": (b"top", b"person", b"organizationalPerson", b"inetOrgPerson"),
            "uid": (login.encode(),),
            "cn": (display_name.encode(),),
            "sn": ((user.surname.strip() if user.surname and user.surname.strip() else display_name).encode(),),
            "displayName": (display_name.encode(),),
        }
        if user.given_name and user.given_name.strip():
            attributes["givenName"] = (user.given_name.strip().encode(),)
        mail = publishable_mail(user.email, login=login)
        if mail:
            attributes["mail"] = (mail.encode("ascii"),)
        phone = publishable_phone(user.phone, login=login)
        if phone:
            attributes["telephoneNumber"] = (phone.encode("ascii"),)
        if user.department_path:
            for name in user.department_path:
                _require_text(name, "department name")
            attributes["ou"] = (user.department_path[-1].encode(),)
            attributes["departmentNumber"] = (encode_department_path(user.department_path).encode(),)
        if user.password_hash is not None and not user.locked:
            attributes["userPassword"] = (b"{ARGON2}" + _require_argon2id(user.password_hash).encode("ascii"),)
        if user.certificates:
            attributes["userCertificate;binary"] = tuple(
                _require_der(certificate, "certificates") for certificate in user.certificates
            )
        return Entry(self.user_dn(login), attributes)

    def group_entry(self, group: PublishedGroup) -> Entry:
        dn = self.group_dn(group.name)
        members = sorted({self.user_dn(login) for login in group.members}, key=normalize_dn)
        attributes: dict[str, Values] = {
            "objectClass": (b"top", b"groupOfNames"),
            "cn": (group.name.encode(),),
            # groupOfNames requires a member: an empty group names itself.
            "member": tuple(m.encode() for m in members) if members else (dn.encode(),),
        }
        if group.description:
            attributes["description"] = (group.description.encode(),)
        return Entry(dn, attributes)

    def ca_entry(self, ca: PublishedCA) -> Entry:
        # pkiCA (RFC 4523) rather than certificationAuthority, which requires
        # an authorityRevocationList Hengxin does not produce.
        attributes: dict[str, Values] = {
            "objectClass": (b"top", b"applicationProcess", b"pkiCA"),
            "cn": (_require_text(ca.name, "ca name").encode(),),
            "cACertificate;binary": (_require_der(ca.certificate, "certificate"),),
        }
        if ca.crl is not None:
            attributes["certificateRevocationList;binary"] = (_require_der(ca.crl, "crl"),)
        return Entry(self.ca_dn(ca.name), attributes)

    def expected_entries(
        self,
        *,
        departments: Iterable[PublishedDepartment] = (),
        users: Iterable[PublishedUser] = (),
        groups: Iterable[PublishedGroup] = (),
        cas: Iterable[PublishedCA] = (),
    ) -> tuple[Entry, ...]:
        """Every entry the managed subtrees should hold, containers included, parents first.

        Raises ``InvalidPublishedValue`` when two values map to the same DN
        or a department's parent is not among ``departments``.
        """
        entries: list[Entry] = list(self.container_entries())
        department_entries = [self.department_entry(d) for d in sorted(departments, key=lambda d: len(d.path))]
        known = {normalize_dn(self.departments_dn)}
        for entry in department_entries:
            if normalize_dn(parent_dn(entry.dn)) not in known:
                raise InvalidPublishedValue(f"the parent of department {entry.dn!r} is not published", field="path")
            known.add(entry.normalized_dn)
        entries.extend(department_entries)
        entries.extend(self.user_entry(u) for u in users)
        entries.extend(self.group_entry(g) for g in groups)
        entries.extend(self.ca_entry(c) for c in cas)
        seen: set[str] = set()
        for entry in entries:
            if entry.normalized_dn in seen:
                raise InvalidPublishedValue(f"two published values map to {entry.dn!r}", field="dn")
            seen.add(entry.normalized_dn)
        return tuple(entries)


# ---------------------------------------------------------------------------
# Drift between what should be published and what the server holds.


@dataclass(frozen=True)
class AttributeDrift:
    """One attribute whose values differ; ``expected == ()`` means it should not exist."""

    name: str
    expected: Values
    actual: Values

    def __repr__(self) -> str:
        if attribute_key(self.name) in _REDACTED_ATTRIBUTES:
            return f"AttributeDrift(name={self.name!r}, <values redacted>)"
        return f"AttributeDrift(name={self.name!r}, expected={self.expected!r}, actual={self.actual!r})"


@dataclass(frozen=True)
class EntryDrift:
    """An entry present on both sides whose attributes differ."""

    expected: Entry
    actual: Entry
    attributes: tuple[AttributeDrift, ...]

    @property
    def dn(self) -> str:
        return self.expected.dn


@dataclass(frozen=True)
class Drift:
    """The difference between expected and actual entries.

    ``missing`` is sorted parents first (the order to add them), ``extra``
    children first (the order to delete them).
    """

    missing: tuple[Entry, ...] = ()
    extra: tuple[Entry, ...] = ()
    changed: tuple[EntryDrift, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.changed)

    @property
    def is_empty(self) -> bool:
        return not self

    def summary(self) -> str:
        """One line per difference, naming DNs and attributes but never values."""
        lines = [f"missing {e.dn}" for e in self.missing]
        lines += [f"extra {e.dn}" for e in self.extra]
        lines += [f"changed {c.dn}: {', '.join(a.name for a in c.attributes)}" for c in self.changed]
        return "\n".join(lines)


def _comparable(name: str, values: Values) -> frozenset[bytes]:
    key = attribute_key(name)
    if key in _CASE_INSENSITIVE_ATTRIBUTES:
        return frozenset(v.lower() for v in values)
    if key in _DN_VALUED_ATTRIBUTES:
        comparable = set()
        for value in values:
            try:
                comparable.add(normalize_dn(value.decode("utf-8")).encode())
            except (UnicodeDecodeError, InvalidPublishedValue):
                comparable.add(value)
        return frozenset(comparable)
    return frozenset(values)


def entry_differences(expected: Entry, actual: Entry) -> tuple[AttributeDrift, ...]:
    """The attributes whose values differ between two versions of one entry, by name.

    Compared as :func:`diff` compares them; an attribute only in ``actual``
    comes back with ``expected == ()``.
    """
    expected_names = {attribute_key(n): n for n in expected.attributes}
    actual_names = {attribute_key(n): n for n in actual.attributes}
    differences = []
    for key in sorted(expected_names.keys() | actual_names.keys()):
        name = expected_names.get(key) or actual_names[key]
        want = expected.attributes[expected_names[key]] if key in expected_names else ()
        have = actual.attributes[actual_names[key]] if key in actual_names else ()
        if _comparable(name, want) != _comparable(name, have):
            differences.append(AttributeDrift(name=name, expected=want, actual=have))
    return tuple(differences)


def diff(expected: Iterable[Entry], actual: Iterable[Entry]) -> Drift:
    """Compare expected entries with what a server holds.

    DNs are compared in normalised form, attribute names ignoring case and
    ``;binary``, ``objectClass`` values ignoring case, DN-valued attributes
    (``member`` ...) normalised, other values byte for byte and as sets.
    Raises ``InvalidPublishedValue`` if ``expected`` names a DN twice.
    """
    wanted: dict[str, Entry] = {}
    for entry in expected:
        if entry.normalized_dn in wanted:
            raise InvalidPublishedValue(f"{entry.dn!r} is expected twice", field="dn")
        wanted[entry.normalized_dn] = entry
    present = {entry.normalized_dn: entry for entry in actual}

    missing = sorted((wanted[k] for k in wanted.keys() - present.keys()), key=lambda e: (dn_depth(e.dn), e.dn))
    extra = sorted((present[k] for k in present.keys() - wanted.keys()), key=lambda e: (-dn_depth(e.dn), e.dn))
    changed = []
    for key in sorted(wanted.keys() & present.keys(), key=lambda k: (dn_depth(k), k)):
        differences = entry_differences(wanted[key], present[key])
        if differences:
            changed.append(EntryDrift(expected=wanted[key], actual=present[key], attributes=differences))
    return Drift(missing=tuple(missing), extra=tuple(extra), changed=tuple(changed))


# ---------------------------------------------------------------------------
# Federation: users read from another directory.


@dataclass(frozen=True)
class AttributeMap:
    """Which attribute of a foreign directory holds which user field.

    The defaults fit inetOrgPerson (OpenLDAP, 389-ds); for Active Directory
    use ``login="sAMAccountName"``.  ``display_name_fallback`` is used when
    the display name attribute is missing.
    """

    login: str = "uid"
    display_name: str = "displayName"
    display_name_fallback: str = "cn"
    given_name: str = "givenName"
    surname: str = "sn"
    email: str = "mail"
    phone: str = "telephoneNumber"
    department: str = "ou"
    certificates: str = "userCertificate;binary"

    def attribute_names(self) -> tuple[str, ...]:
        """The attributes to request from the foreign server."""
        return tuple(
            dict.fromkeys(
                (
                    self.login,
                    self.display_name,
                    self.display_name_fallback,
                    self.given_name,
                    self.surname,
                    self.email,
                    self.phone,
                    self.department,
                    self.certificates,
                )
            )
        )


@dataclass(frozen=True)
class ImportedUser:
    """A user read from a foreign directory.  No password: such users authenticate by bind there."""

    dn: str
    login: str
    display_name: str
    given_name: str | None = None
    surname: str | None = None
    email: str | None = None
    phone: str | None = None
    department: str | None = None
    certificates: tuple[bytes, ...] = ()


def imported_user_from_entry(entry: Entry, attribute_map: AttributeMap = AttributeMap()) -> ImportedUser | None:  # noqa: B008 - frozen default
    """Convert a foreign entry to an :class:`ImportedUser`, or None if it has no login value."""
    login = entry.text(attribute_map.login)
    if not login or not login.strip():
        return None
    display_name = entry.text(attribute_map.display_name) or entry.text(attribute_map.display_name_fallback) or login
    return ImportedUser(
        dn=entry.dn,
        login=login.strip(),
        display_name=display_name,
        given_name=entry.text(attribute_map.given_name),
        surname=entry.text(attribute_map.surname),
        email=entry.text(attribute_map.email),
        phone=entry.text(attribute_map.phone),
        department=entry.text(attribute_map.department),
        certificates=entry.values(attribute_map.certificates),
    )
