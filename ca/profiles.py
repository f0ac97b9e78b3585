"""Certificate profiles: what a certificate of each kind may and must contain.

The shipped data lives in ``ca/profiles.yaml``; :func:`load_profiles` reads it,
merges the operator's overrides and returns a :class:`ProfileSet` of frozen
:class:`Profile` values.  A profile checks a request (:meth:`Profile.check_key`,
:meth:`Profile.check_validity`, :meth:`Profile.check_subject`,
:meth:`Profile.check_sans`) and raises :class:`~ca.errors.ProfileViolation`
with a ``rule`` naming what was broken.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ca._common import require_utc
from ca.errors import ProfileConfigurationError, ProfileViolation, UnknownProfile, UnsupportedKey

__all__ = [
    "KeyType",
    "Profile",
    "ProfileSet",
    "SANType",
    "SUBJECT_ATTRIBUTES",
    "SubjectAltNames",
    "SubjectAttribute",
    "default_profiles",
    "key_type_of",
    "load_profiles",
    "normalise_subject",
]


class KeyType(enum.StrEnum):
    """A subject key type and size the CA can certify."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"

    @property
    def is_rsa(self) -> bool:
        """Whether this is an RSA key type."""
        return self.value.startswith("rsa-")


_EC_CURVES: dict[str, KeyType] = {"secp256r1": KeyType.EC_P256, "secp384r1": KeyType.EC_P384}
_RSA_SIZES: dict[int, KeyType] = {2048: KeyType.RSA_2048, 3072: KeyType.RSA_3072, 4096: KeyType.RSA_4096}


def key_type_of(public_key: CertificatePublicKeyTypes) -> KeyType:
    """Classify a public key.

    Raises:
        UnsupportedKey: the key is of a type, curve or size the CA never
            certifies (DSA, Ed448, P-521, RSA of another size, an RSA public
            exponent below 65537 or even).
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        key_type = _EC_CURVES.get(public_key.curve.name)
        if key_type is None:
            raise UnsupportedKey(
                f"elliptic curve {public_key.curve.name} is not supported",
                detail_zh=f"不支持椭圆曲线 {public_key.curve.name}",
            )
        return key_type
    if isinstance(public_key, rsa.RSAPublicKey):
        key_type = _RSA_SIZES.get(public_key.key_size)
        if key_type is None:
            raise UnsupportedKey(
                f"RSA keys of {public_key.key_size} bits are not supported",
                detail_zh=f"不支持 {public_key.key_size} 位的 RSA 密钥",
            )
        exponent = public_key.public_numbers().e
        if exponent < 65537 or exponent % 2 == 0:
            raise UnsupportedKey("RSA public exponent must be odd and at least 65537",
                                 detail_zh="RSA 公钥指数必须为不小于 65537 的奇数")
        return key_type
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    raise UnsupportedKey(
        f"{type(public_key).__name__} keys are not supported",
        detail_zh=f"不支持 {type(public_key).__name__} 类型的密钥",
    )


class SANType(enum.StrEnum):
    """A subjectAltName type the CA issues."""

    DNS = "dns"
    IP = "ip"
    EMAIL = "email"
    URI = "uri"


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclasses.dataclass(frozen=True)
class SubjectAltNames:
    """The subject alternative names of a certificate request.

    Strings are taken as given (IP addresses may be given as strings and are
    parsed); :meth:`Profile.check_sans` decides what is acceptable.
    """

    dns: tuple[str, ...] = ()
    ip: tuple[IPAddress, ...] = ()
    email: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("dns", "email", "uri"):
            value = getattr(self, field)
            if isinstance(value, str):
                raise TypeError(f"SubjectAltNames.{field} must be a sequence of strings, not a string")
            object.__setattr__(self, field, tuple(value))
        if isinstance(self.ip, str):
            raise TypeError("SubjectAltNames.ip must be a sequence, not a string")
        try:
            addresses = tuple(ipaddress.ip_address(a) for a in self.ip)
        except ValueError as e:
            raise ProfileViolation(f"invalid IP address in subjectAltName: {e}", rule="san_invalid") from None
        object.__setattr__(self, "ip", addresses)

    def __bool__(self) -> bool:
        return bool(self.dns or self.ip or self.email or self.uri)

    def types(self) -> frozenset[SANType]:
        """The SAN types present."""
        present = set()
        for san_type in SANType:
            if getattr(self, san_type.value):
                present.add(san_type)
        return frozenset(present)

    def general_names(self) -> list[x509.GeneralName]:
        """The names as ``cryptography`` general names, DNS, IP, e-mail, URI in that order."""
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in self.dns]
        names += [x509.IPAddress(a) for a in self.ip]
        names += [x509.RFC822Name(e) for e in self.email]
        names += [x509.UniformResourceIdentifier(u) for u in self.uri]
        return names

    @classmethod
    def from_general_names(cls, names: Iterable[x509.GeneralName]) -> SubjectAltNames:
        """Collect DNS, IP, e-mail and URI names; other general name types are skipped."""
        dns: list[str] = []
        ip: list[IPAddress] = []
        email: list[str] = []
        uri: list[str] = []
        for name in names:
            if isinstance(name, x509.DNSName):
                dns.append(name.value)
            elif isinstance(name, x509.IPAddress) and isinstance(
                name.value, ipaddress.IPv4Address | ipaddress.IPv6Address
            ):
                ip.append(name.value)
            elif isinstance(name, x509.RFC822Name):
                email.append(name.value)
            elif isinstance(name, x509.UniformResourceIdentifier):
                uri.append(name.value)
        return cls(dns=tuple(dns), ip=tuple(ip), email=tuple(email), uri=tuple(uri))


@dataclasses.dataclass(frozen=True)
class SubjectAttribute:
    """A subject attribute the CA knows: its OID, its upper bound (RFC 5280 appendix A) and
    whether it may repeat."""

    name: str
    oid: ObjectIdentifier
    max_length: int
    multi_valued: bool = False


# Canonical order of the subject, most significant first (X.500 / RFC 4514 reversed).
SUBJECT_ATTRIBUTES: Mapping[str, SubjectAttribute] = {
    a.name: a
    for a in (
        SubjectAttribute("C", NameOID.COUNTRY_NAME, 2),
        SubjectAttribute("ST", NameOID.STATE_OR_PROVINCE_NAME, 128),
        SubjectAttribute("L", NameOID.LOCALITY_NAME, 128),
        SubjectAttribute("O", NameOID.ORGANIZATION_NAME, 64),
        SubjectAttribute("organizationIdentifier", NameOID.ORGANIZATION_IDENTIFIER, 64),
        SubjectAttribute("OU", NameOID.ORGANIZATIONAL_UNIT_NAME, 64, multi_valued=True),
        SubjectAttribute("CN", NameOID.COMMON_NAME, 64),
        SubjectAttribute("serialNumber", NameOID.SERIAL_NUMBER, 64),
        SubjectAttribute("emailAddress", NameOID.EMAIL_ADDRESS, 255),
    )
}

# PrintableString characters (X.680 section 41.4); serialNumber and C are PrintableString.
_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]+")
_COUNTRY = re.compile(r"[A-Z]{2}")
_LDH_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@([A-Za-z0-9.-]{1,253})")


def _violation(rule: str, detail: str, detail_zh: str) -> ProfileViolation:
    return ProfileViolation(detail, rule=rule, detail_zh=detail_zh)


def normalise_subject(subject: Mapping[str, str | Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Turn a subject mapping (``{"CN": "张伟", "OU": ["a", "b"]}``) into attribute name → values.

    Checks what holds for every profile: known attribute names, non-empty
    values, one value unless the attribute may repeat, upper bounds, and the
    PrintableString alphabet of C and serialNumber.

    Raises:
        ProfileViolation: rules ``subject_attribute_unknown``,
            ``subject_attribute_empty``, ``subject_attribute_multiple``,
            ``subject_attribute_length``, ``subject_attribute_invalid``.
    """
    result: dict[str, tuple[str, ...]] = {}
    for name, raw in subject.items():
        attribute = SUBJECT_ATTRIBUTES.get(name)
        if attribute is None:
            raise _violation("subject_attribute_unknown", f"unknown subject attribute {name!r}",
                             f"未知的主体属性 {name!r}")
        values = (raw,) if isinstance(raw, str) else tuple(raw)
        if not values:
            continue
        if len(values) > 1 and not attribute.multi_valued:
            raise _violation("subject_attribute_multiple", f"subject attribute {name} may have only one value",
                             f"主体属性 {name} 只能有一个值")
        for value in values:
            if not isinstance(value, str) or not value.strip():
                raise _violation("subject_attribute_empty", f"subject attribute {name} is empty",
                                 f"主体属性 {name} 为空")
            if value != value.strip():
                raise _violation("subject_attribute_invalid",
                                 f"subject attribute {name} has leading or trailing spaces",
                                 f"主体属性 {name} 首尾含有空格")
            if len(value) > attribute.max_length:
                raise _violation("subject_attribute_length",
                                 f"subject attribute {name} is longer than {attribute.max_length} characters",
                                 f"主体属性 {name} 超过 {attribute.max_length} 个字符")
            if "\x00" in value:
                raise _violation("subject_attribute_invalid", f"subject attribute {name} contains NUL",
                                 f"主体属性 {name} 含有空字符")
        if name == "C" and not _COUNTRY.fullmatch(values[0]):
            raise _violation("subject_attribute_invalid", "C must be two capital letters (ISO 3166), e.g. CN",
                             "C 必须是两个大写字母（ISO 3166），例如 CN")
        if name == "serialNumber" and not _PRINTABLE.fullmatch(values[0]):
            raise _violation("subject_attribute_invalid", "serialNumber must use PrintableString characters",
                             "serialNumber 只能使用 PrintableString 字符")
        if name == "emailAddress" and not valid_email_address(values[0]):
            raise _violation("subject_attribute_invalid", "emailAddress is not a valid ASCII e-mail address",
                             "emailAddress 不是有效的 ASCII 电子邮件地址")
        result[name] = values
    return result


def valid_dns_name(name: str, wildcard: bool) -> bool:
    if not name.isascii() or len(name) > 253 or name.endswith("."):
        return False
    labels = name.split(".")
    if wildcard and len(labels) > 2 and labels[0] == "*":
        labels = labels[1:]
    return len(labels) >= 1 and all(_LDH_LABEL.fullmatch(label) for label in labels)


def valid_email_address(address: str) -> bool:
    match = _EMAIL.fullmatch(address)
    return match is not None and valid_dns_name(match.group(1), wildcard=False)


_KEY_USAGE_NAMES: Mapping[str, str] = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
}

_EKU_NAMES: Mapping[str, ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}

_DURATION = re.compile(r"([1-9][0-9]*)([mhd])")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _format_duration(value: datetime.timedelta) -> str:
    seconds = int(value.total_seconds())
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


@dataclasses.dataclass(frozen=True)
class Profile:
    """A certificate profile.  See ``ca/profiles.yaml`` for what each field means."""

    name: str
    description: str
    ca: bool
    key_types: frozenset[KeyType]
    max_validity: datetime.timedelta
    default_validity: datetime.timedelta
    subject_required: tuple[str, ...]
    subject_allowed: frozenset[str]
    key_usage: frozenset[str]
    self_signed: bool = False
    path_length: int | None = None
    name_constraints: bool = False
    san_allowed: frozenset[SANType] = frozenset()
    san_required_any: frozenset[SANType] = frozenset()
    wildcard_dns: bool = False
    common_name_in_san: bool = False
    key_usage_rsa: frozenset[str] = frozenset()
    extended_key_usage: tuple[ObjectIdentifier, ...] = ()
    extended_key_usage_critical: bool = False
    ocsp_no_check: bool = False
    policies: tuple[ObjectIdentifier, ...] = ()
    ca_issuers_url: bool = True
    ocsp_url: bool = True
    crl_url: bool = True

    def check_key(self, public_key: CertificatePublicKeyTypes) -> KeyType:
        """Return the key's type if this profile accepts it.

        Raises:
            UnsupportedKey: the CA never certifies such a key.
            ProfileViolation: rule ``key_type``.
        """
        key_type = key_type_of(public_key)
        if key_type not in self.key_types:
            raise _violation("key_type", f"key type {key_type} is not allowed by profile {self.name}",
                             f"证书模板 {self.name} 不允许 {key_type} 密钥")
        return key_type

    def check_validity(self, not_before: datetime.datetime, not_after: datetime.datetime) -> None:
        """Check that ``not_after`` follows ``not_before`` by at most ``max_validity``.

        Raises:
            ProfileViolation: rule ``validity``.
        """
        not_before = require_utc(not_before, "not_before")
        not_after = require_utc(not_after, "not_after")
        if not_after <= not_before:
            raise _violation("validity", "not_after must be later than not_before",
                             "有效期截止时间必须晚于起始时间")
        if not_after - not_before > self.max_validity:
            limit = _format_duration(self.max_validity)
            raise _violation("validity", f"validity exceeds the maximum of {limit} of profile {self.name}",
                             f"有效期超过证书模板 {self.name} 的上限 {limit}")

    def check_subject(self, subject: Mapping[str, str | Sequence[str]]) -> dict[str, tuple[str, ...]]:
        """Check a subject mapping against the profile and return it normalised (see :func:`normalise_subject`).

        Raises:
            ProfileViolation: rules of :func:`normalise_subject`, and
                ``subject_attribute_required``, ``subject_attribute_not_allowed``.
        """
        values = normalise_subject(subject)
        for name in self.subject_required:
            if name not in values:
                raise _violation("subject_attribute_required",
                                 f"profile {self.name} requires subject attribute {name}",
                                 f"证书模板 {self.name} 要求主体属性 {name}")
        for name in values:
            if name not in self.subject_allowed and name not in self.subject_required:
                raise _violation("subject_attribute_not_allowed",
                                 f"subject attribute {name} is not allowed by profile {self.name}",
                                 f"证书模板 {self.name} 不允许主体属性 {name}")
        return values

    def check_sans(self, sans: SubjectAltNames, subject: Mapping[str, Sequence[str]] | None = None) -> None:
        """Check subject alternative names against the profile.

        ``subject`` is the normalised subject; it is needed for
        ``common_name_in_san``.

        Raises:
            ProfileViolation: rules ``san_type_not_allowed``, ``san_required``,
                ``san_invalid``, ``common_name_not_in_san``.
        """
        present = sans.types()
        disallowed = ", ".join(sorted(present - self.san_allowed))
        if disallowed:
            raise _violation("san_type_not_allowed",
                             f"subjectAltName type {disallowed} is not allowed by profile {self.name}",
                             f"证书模板 {self.name} 不允许 {disallowed} 类型的主体备用名称")
        if self.san_required_any and not present & self.san_required_any:
            wanted = " or ".join(sorted(self.san_required_any))
            raise _violation("san_required", f"profile {self.name} requires a subjectAltName of type {wanted}",
                             f"证书模板 {self.name} 要求 {wanted} 类型的主体备用名称")
        for dns in sans.dns:
            if not valid_dns_name(dns, self.wildcard_dns):
                raise _violation("san_invalid", f"{dns!r} is not a valid DNS name for profile {self.name}",
                                 f"{dns!r} 不是证书模板 {self.name} 允许的 DNS 名称")
        for email in sans.email:
            if not valid_email_address(email):
                raise _violation("san_invalid", f"{email!r} is not a valid ASCII e-mail address",
                                 f"{email!r} 不是有效的 ASCII 电子邮件地址")
        for uri in sans.uri:
            if not uri.isascii() or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", uri):
                raise _violation("san_invalid", f"{uri!r} is not a valid URI", f"{uri!r} 不是有效的 URI")
        if self.common_name_in_san and subject is not None:
            common_names = subject.get("CN", ())
            allowed = {d.lower() for d in sans.dns} | {str(a) for a in sans.ip}
            for cn in common_names:
                if cn.lower() not in allowed:
                    raise _violation("common_name_not_in_san",
                                     f"CN {cn!r} must repeat one of the DNS or IP subjectAltNames",
                                     f"CN {cn!r} 必须与某个 DNS 或 IP 主体备用名称相同")

    def key_usage_extension(self, key_type: KeyType) -> x509.KeyUsage:
        """The keyUsage extension value for a subject key of ``key_type``."""
        bits = set(self.key_usage)
        if key_type.is_rsa:
            bits |= self.key_usage_rsa
        flags = {attribute: name in bits for name, attribute in _KEY_USAGE_NAMES.items()}
        return x509.KeyUsage(encipher_only=False, decipher_only=False, **flags)


# --- loading -------------------------------------------------------------------------------------------

_FIELDS = {f.name: f for f in dataclasses.fields(Profile) if f.name != "name"}
_REQUIRED_FIELDS = {
    name for name, f in _FIELDS.items()
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
}


def _config_error(profile: str, message: str) -> ProfileConfigurationError:
    return ProfileConfigurationError(f"profile {profile}: {message}", detail_zh=f"证书模板 {profile}：{message}")


def _string_list(profile: str, field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _config_error(profile, f"{field} must be a list of strings")
    return value


def _boolean(profile: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _config_error(profile, f"{field} must be true or false")
    return value


def _duration(profile: str, field: str, value: Any) -> datetime.timedelta:
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _config_error(profile, f"{field} must look like 15m, 24h or 365d")
    return datetime.timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def _oid(profile: str, field: str, value: str) -> ObjectIdentifier:
    try:
        return ObjectIdentifier(value)
    except ValueError:
        raise _config_error(profile, f"{field}: {value!r} is not an OID") from None


def _build_profile(name: str, data: Mapping[str, Any]) -> Profile:
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise _config_error(name, f"unknown fields: {', '.join(sorted(unknown))}")
    missing = _REQUIRED_FIELDS - set(data)
    if missing:
        raise _config_error(name, f"missing fields: {', '.join(sorted(missing))}")
    values: dict[str, Any] = {}
    for field, raw in data.items():
        if field == "description":
            if not isinstance(raw, str):
                raise _config_error(name, "description must be a string")
            values[field] = raw
        elif field in {"ca", "self_signed", "name_constraints", "wildcard_dns", "common_name_in_san",
                       "extended_key_usage_critical", "ocsp_no_check", "ca_issuers_url", "ocsp_url", "crl_url"}:
            values[field] = _boolean(name, field, raw)
        elif field == "path_length":
            if raw is not None and (not isinstance(raw, int) or isinstance(raw, bool) or raw < 0):
                raise _config_error(name, "path_length must be null or a non-negative integer")
            values[field] = raw
        elif field == "key_types":
            try:
                values[field] = frozenset(KeyType(v) for v in _string_list(name, field, raw))
            except ValueError as e:
                raise _config_error(name, f"key_types: {e}") from None
        elif field in {"max_validity", "default_validity"}:
            values[field] = _duration(name, field, raw)
        elif field == "subject_required":
            values[field] = tuple(_string_list(name, field, raw))
        elif field == "subject_allowed":
            values[field] = frozenset(_string_list(name, field, raw))
        elif field in {"san_allowed", "san_required_any"}:
            try:
                values[field] = frozenset(SANType(v) for v in _string_list(name, field, raw))
            except ValueError as e:
                raise _config_error(name, f"{field}: {e}") from None
        elif field in {"key_usage", "key_usage_rsa"}:
            bits = _string_list(name, field, raw)
            bad = [b for b in bits if b not in _KEY_USAGE_NAMES]
            if bad:
                raise _config_error(name, f"{field}: unknown key usage {', '.join(bad)}")
            values[field] = frozenset(bits)
        elif field == "extended_key_usage":
            values[field] = tuple(
                _EKU_NAMES[v] if v in _EKU_NAMES else _oid(name, field, v) for v in _string_list(name, field, raw)
            )
        elif field == "policies":
            values[field] = tuple(_oid(name, field, v) for v in _string_list(name, field, raw))
    profile = Profile(name=name, **values)
    _check_consistency(profile)
    return profile


def _check_consistency(p: Profile) -> None:
    for attribute in (*p.subject_required, *p.subject_allowed):
        if attribute not in SUBJECT_ATTRIBUTES:
            raise _config_error(p.name, f"unknown subject attribute {attribute}")
    if not p.key_types:
        raise _config_error(p.name, "key_types must not be empty")
    if p.default_validity > p.max_validity:
        raise _config_error(p.name, "default_validity exceeds max_validity")
    if not p.san_required_any <= p.san_allowed:
        raise _config_error(p.name, "san_required_any must be a subset of san_allowed")
    if p.ca:
        if not {"keyCertSign", "cRLSign"} <= p.key_usage:
            raise _config_error(p.name, "a CA profile needs keyCertSign and cRLSign")
        if p.extended_key_usage:
            raise _config_error(p.name, "a CA profile must not restrict extended key usage")
    else:
        if p.key_usage & {"keyCertSign", "cRLSign"}:
            raise _config_error(p.name, "keyCertSign and cRLSign are for CA profiles only")
        if p.self_signed or p.path_length is not None or p.name_constraints:
            raise _config_error(p.name, "self_signed, path_length and name_constraints are for CA profiles only")
    if p.self_signed and (p.ca_issuers_url or p.ocsp_url or p.crl_url):
        raise _config_error(p.name, "a self-signed root has no issuer to point to: URLs must be off")
    if not p.subject_required:
        raise _config_error(p.name, "subject_required must name at least one attribute")
    if p.common_name_in_san and "CN" not in p.subject_required and "CN" not in p.subject_allowed:
        raise _config_error(p.name, "common_name_in_san needs CN in the subject")


@dataclasses.dataclass(frozen=True)
class ProfileSet:
    """The profiles in force, by name."""

    profiles: Mapping[str, Profile]

    def get(self, name: str) -> Profile:
        """The profile called ``name``.

        Raises:
            UnknownProfile: there is none.
        """
        try:
            return self.profiles[name]
        except KeyError:
            raise UnknownProfile(f"unknown certificate profile {name!r}",
                                 detail_zh=f"证书模板 {name!r} 不存在", profile=name) from None

    def __contains__(self, name: object) -> bool:
        return name in self.profiles

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.profiles.values())

    def __len__(self) -> int:
        return len(self.profiles)

    @property
    def names(self) -> tuple[str, ...]:
        """The profile names, in the order they were defined."""
        return tuple(self.profiles)


def _read_shipped() -> dict[str, Any]:
    text = resources.files("ca").joinpath("profiles.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_profiles(
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    data: Mapping[str, Any] | None = None,
) -> ProfileSet:
    """Load the shipped profiles (or ``data``, the parsed content of a profiles file) and merge overrides.

    ``overrides`` maps a profile name to fields that replace the shipped ones
    (lists are replaced, not merged).  A name that is not shipped defines a new
    profile; ``extends: <name>`` starts it from a copy of another profile.

    Raises:
        ProfileConfigurationError: the data or the overrides are invalid
            (unknown field, wrong type, inconsistent profile).
    """
    document = _read_shipped() if data is None else data
    if not isinstance(document, Mapping) or set(document) != {"profiles"} or not isinstance(
        document["profiles"], Mapping
    ):
        raise ProfileConfigurationError("the profiles document must have exactly one key, 'profiles', a mapping",
                                        detail_zh="证书模板文件必须且只能包含映射 'profiles'")
    raw: dict[str, dict[str, Any]] = {}
    for name, fields in document["profiles"].items():
        if not isinstance(fields, Mapping):
            raise _config_error(str(name), "must be a mapping")
        raw[str(name)] = dict(fields)
    for name, patch in (overrides or {}).items():
        if not isinstance(patch, Mapping):
            raise _config_error(name, "override must be a mapping")
        patch = dict(patch)
        base_name = patch.pop("extends", None)
        if base_name is not None:
            if base_name not in raw:
                raise _config_error(name, f"extends unknown profile {base_name!r}")
            raw[name] = {**raw[base_name], **patch}
        else:
            raw[name] = {**raw.get(name, {}), **patch}
    return ProfileSet({name: _build_profile(name, fields) for name, fields in raw.items()})


@functools.cache
def default_profiles() -> ProfileSet:
    """The shipped profiles without overrides (read once, on first use)."""
    return load_profiles()
