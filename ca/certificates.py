"""Building certificates and checking certificate signing requests.

:func:`build_certificate` is a pure function of its inputs: the profile, the
issuer's certificate and key, what is certified, a serial number and a
validity window.  The issuer key may be any ``cryptography`` private key
object, including key-store keys that only implement ``sign()``,
``public_key()`` and ``curve``/``key_size``.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import re
import secrets
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID

from ca._common import key_identifier, require_utc, signature_hash
from ca.errors import CAError, CSRInvalid, CSRSignatureInvalid, IssuerInvalid, ProfileViolation
from ca.profiles import (
    SUBJECT_ATTRIBUTES,
    KeyType,
    Profile,
    SubjectAltNames,
    key_type_of,
    normalise_subject,
    valid_dns_name,
    valid_email_address,
)

__all__ = [
    "CSR",
    "MAX_CSR_SIZE",
    "NameConstraints",
    "PublicationURLs",
    "build_certificate",
    "build_name",
    "new_serial",
    "parse_csr",
]

# A CSR is a few kilobytes at most; refuse anything far larger before parsing it.
MAX_CSR_SIZE = 64 * 1024

# RFC 5280 section 4.1.2.2: at most 20 octets, so below 2**159 to stay positive.
_SERIAL_LIMIT = 1 << 159
_WEAK_CSR_HASHES = (hashes.MD5, hashes.SHA1)
_CA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def new_serial() -> int:
    """A fresh certificate serial number: 127 random bits, positive, at least 2**64.

    127 bits keep the DER INTEGER within 16 octets without a leading zero
    octet, well inside RFC 5280's 20-octet limit and above CA/Browser Forum's
    64 bits of entropy.
    """
    while True:
        serial = secrets.randbits(127)
        if serial >= 1 << 64:
            return serial


@dataclasses.dataclass(frozen=True)
class PublicationURLs:
    """Where the issuing CA publishes its certificate, CRL and OCSP service.

    ``base_url`` must be plain ``http://``: relying parties fetch these to
    check revocation, which must not depend on TLS (whose own checks would
    need them).  ``ca_name`` is the issuing CA's name in the URL paths.
    """

    base_url: str
    ca_name: str

    def __post_init__(self) -> None:
        base = self.base_url.rstrip("/")
        if not re.fullmatch(r"http://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?", base):
            raise IssuerInvalid(f"publication base URL must be a plain http:// URL, got {self.base_url!r}",
                                detail_zh="发布地址必须是 http:// 地址")
        if not _CA_NAME.fullmatch(self.ca_name):
            raise IssuerInvalid(f"CA name {self.ca_name!r} cannot be used in a URL",
                                detail_zh=f"CA 名称 {self.ca_name!r} 不能用于地址")
        object.__setattr__(self, "base_url", base)

    @property
    def ca_issuers(self) -> str:
        """AIA caIssuers: the issuing CA's certificate (DER)."""
        return f"{self.base_url}/ca/{self.ca_name}.crt"

    @property
    def ocsp(self) -> str:
        """AIA OCSP: the OCSP responder."""
        return f"{self.base_url}/ocsp"

    @property
    def crl(self) -> str:
        """CRL distribution point of the issuing CA."""
        return f"{self.base_url}/crl/{self.ca_name}.crl"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True)
class NameConstraints:
    """Name constraints of a subordinate CA (RFC 5280 section 4.2.1.10).

    DNS subtrees are domains (``example.gov.cn`` covers it and its
    subdomains); e-mail subtrees are a mailbox (``a@example.gov.cn``), a host
    (``example.gov.cn``) or a domain (``.example.gov.cn``); IP subtrees are
    networks; directory subtrees are subject mappings such as
    ``{"C": "CN", "O": "某某县人民政府"}``.
    """

    permitted_dns: tuple[str, ...] = ()
    excluded_dns: tuple[str, ...] = ()
    permitted_email: tuple[str, ...] = ()
    excluded_email: tuple[str, ...] = ()
    permitted_ip: tuple[IPNetwork, ...] = ()
    excluded_ip: tuple[IPNetwork, ...] = ()
    permitted_directory_names: tuple[Mapping[str, str | Sequence[str]], ...] = ()
    excluded_directory_names: tuple[Mapping[str, str | Sequence[str]], ...] = ()

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, str | Mapping):
                raise TypeError(f"NameConstraints.{field.name} must be a sequence")
            object.__setattr__(self, field.name, tuple(value))
        try:
            for name in ("permitted_ip", "excluded_ip"):
                networks = tuple(ipaddress.ip_network(n) for n in getattr(self, name))
                object.__setattr__(self, name, networks)
        except ValueError as e:
            raise ProfileViolation(f"invalid IP subtree: {e}", rule="name_constraints") from None

    def extension(self) -> x509.NameConstraints:
        """The extension value.

        Raises:
            ProfileViolation: rule ``name_constraints``: no subtree at all, or
                a malformed one.
        """
        permitted = self._subtrees(self.permitted_dns, self.permitted_email, self.permitted_ip,
                                   self.permitted_directory_names)
        excluded = self._subtrees(self.excluded_dns, self.excluded_email, self.excluded_ip,
                                  self.excluded_directory_names)
        if not permitted and not excluded:
            raise ProfileViolation("name constraints need at least one permitted or excluded subtree",
                                   rule="name_constraints", detail_zh="名称约束至少需要一个允许或排除的子树")
        return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded or None)

    @staticmethod
    def _subtrees(
        dns: tuple[str, ...],
        email: tuple[str, ...],
        ip: tuple[IPNetwork, ...],
        directory_names: tuple[Mapping[str, str | Sequence[str]], ...],
    ) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = []
        for domain in dns:
            if not valid_dns_name(domain, wildcard=False):
                raise ProfileViolation(f"{domain!r} is not a valid DNS subtree", rule="name_constraints")
            names.append(x509.DNSName(domain))
        for subtree in email:
            if "@" in subtree:
                valid = valid_email_address(subtree)
            else:
                valid = valid_dns_name(subtree.removeprefix("."), wildcard=False)
            if not valid:
                raise ProfileViolation(f"{subtree!r} is not a valid e-mail subtree", rule="name_constraints")
            names.append(x509.RFC822Name(subtree))
        names += [x509.IPAddress(network) for network in ip]
        names += [x509.DirectoryName(build_name(normalise_subject(d))) for d in directory_names]
        return names


def build_name(subject: Mapping[str, Sequence[str]]) -> x509.Name:
    """Build a distinguished name from a normalised subject (see :func:`ca.profiles.normalise_subject`).

    Attributes come in a fixed order (C, ST, L, O, organizationIdentifier,
    OU, CN, serialNumber, emailAddress), one per RDN.  Directory strings are
    UTF8String (Chinese names such as ``CN=张伟`` are fine); C and
    serialNumber are PrintableString and emailAddress IA5String, as X.520 and
    PKCS #9 require.
    """
    attributes = []
    for name, attribute in SUBJECT_ATTRIBUTES.items():
        for value in subject.get(name, ()):
            # cryptography's default string types are exactly these: UTF8String,
            # except PrintableString for C and serialNumber and IA5String for emailAddress.
            attributes.append(x509.RelativeDistinguishedName([x509.NameAttribute(attribute.oid, value)]))
    return x509.Name(attributes)


@dataclasses.dataclass(frozen=True)
class CSR:
    """A parsed certificate signing request whose signature has been verified.

    ``subject_attributes`` maps the attribute names the CA knows (see
    :data:`ca.profiles.SUBJECT_ATTRIBUTES`) to their values; attributes of
    other types appear under their dotted OID.  ``sans`` holds the DNS, IP,
    e-mail and URI names of a requested subjectAltName extension; other name
    types and other requested extensions are only in ``requested_extensions``:
    the CA never copies a requested extension into a certificate.
    """

    der: bytes = dataclasses.field(repr=False)
    subject: x509.Name
    subject_attributes: Mapping[str, tuple[str, ...]]
    public_key: CertificatePublicKeyTypes
    key_type: KeyType
    sans: SubjectAltNames
    requested_extensions: x509.Extensions = dataclasses.field(repr=False)


def _load_csr(data: bytes) -> x509.CertificateSigningRequest:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CSRInvalid("a CSR must be given as bytes", detail_zh="证书签名请求必须以字节形式提供")
    data = bytes(data)
    if not data:
        raise CSRInvalid("the CSR is empty", detail_zh="证书签名请求为空")
    if len(data) > MAX_CSR_SIZE:
        raise CSRInvalid(f"the CSR is larger than {MAX_CSR_SIZE} bytes",
                         detail_zh=f"证书签名请求超过 {MAX_CSR_SIZE} 字节")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as e:
        raise CSRInvalid("the CSR is not a valid PKCS #10 request in PEM or DER",
                         detail_zh="证书签名请求不是有效的 PEM 或 DER 格式 PKCS #10 请求") from e


def parse_csr(data: bytes) -> CSR:
    """Parse a PKCS #10 certificate signing request (PEM or DER) and verify its signature.

    Raises:
        CSRInvalid: not a CSR, truncated, too large, malformed extensions, or
            signed with MD5 or SHA-1.
        CSRSignatureInvalid: the signature does not verify with the CSR's key.
        UnsupportedKey: the key is of a type or size the CA never certifies.
    """
    request = _load_csr(data)
    try:
        public_key = request.public_key()
        signature_hash_algorithm = request.signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CSRInvalid("the CSR's key or signature algorithm is not supported",
                         detail_zh="不支持证书签名请求的密钥或签名算法") from e
    if isinstance(signature_hash_algorithm, _WEAK_CSR_HASHES):
        raise CSRInvalid(f"the CSR is signed with {signature_hash_algorithm.name}, which is too weak",
                         detail_zh=f"证书签名请求使用了过弱的 {signature_hash_algorithm.name} 签名")
    try:
        signature_valid = request.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CSRInvalid("the CSR's signature cannot be checked", detail_zh="无法校验证书签名请求的签名") from e
    if not signature_valid:
        raise CSRSignatureInvalid("the CSR's signature does not verify with its public key",
                                  detail_zh="证书签名请求的签名与其公钥不符")
    key_type = key_type_of(public_key)
    try:
        extensions = request.extensions
        subject = request.subject
        attributes: dict[str, list[str]] = {}
        names_by_oid = {a.oid: a.name for a in SUBJECT_ATTRIBUTES.values()}
        for attribute in subject:
            if isinstance(attribute.value, str):
                name = names_by_oid.get(attribute.oid, attribute.oid.dotted_string)
                attributes.setdefault(name, []).append(attribute.value)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CSRInvalid("the CSR's subject or extensions are malformed",
                         detail_zh="证书签名请求的主体或扩展格式错误") from e
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = SubjectAltNames.from_general_names(san)
    except x509.ExtensionNotFound:
        sans = SubjectAltNames()
    return CSR(
        der=request.public_bytes(serialization.Encoding.DER),
        subject=subject,
        subject_attributes={k: tuple(v) for k, v in attributes.items()},
        public_key=public_key,
        key_type=key_type,
        sans=sans,
        requested_extensions=extensions,
    )


def _public_key_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_issuer(
    profile: Profile,
    issuer_cert: x509.Certificate | None,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    public_key: CertificatePublicKeyTypes,
    not_after: datetime.datetime,
    path_length: int | None,
) -> None:
    issuer_public_der = _public_key_der(issuer_key.public_key())
    if profile.self_signed:
        if issuer_cert is not None:
            raise ProfileViolation(f"profile {profile.name} is for self-signed roots: give no issuer certificate",
                                   rule="self_signed", detail_zh=f"证书模板 {profile.name} 仅用于自签名根证书")
        if _public_key_der(public_key) != issuer_public_der:
            raise ProfileViolation("a self-signed root must certify the key that signs it", rule="self_signed",
                                   detail_zh="自签名根证书必须证明签发它的密钥")
        return
    if issuer_cert is None:
        raise ProfileViolation(f"profile {profile.name} needs an issuing CA certificate", rule="issuer_required",
                               detail_zh=f"证书模板 {profile.name} 需要签发机构证书")
    if _public_key_der(issuer_cert.public_key()) != issuer_public_der:
        raise IssuerInvalid("the issuer key does not belong to the issuer certificate",
                            detail_zh="签发密钥与签发机构证书不匹配")
    try:
        constraints = issuer_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = issuer_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise IssuerInvalid("the issuer certificate lacks basicConstraints or keyUsage",
                            detail_zh="签发机构证书缺少基本约束或密钥用法扩展") from None
    if not constraints.ca or not usage.key_cert_sign:
        raise IssuerInvalid("the issuer certificate is not a CA allowed to sign certificates",
                            detail_zh="签发机构证书不是可签发证书的 CA")
    if _public_key_der(public_key) == issuer_public_der:
        raise ProfileViolation("the subject key must differ from the issuer key", rule="key_reuse",
                               detail_zh="主体密钥不能与签发密钥相同")
    if not_after > issuer_cert.not_valid_after_utc:
        raise ProfileViolation("the certificate would outlive its issuer", rule="issuer_validity",
                               detail_zh="证书有效期不能超过签发机构证书")
    if profile.ca and constraints.path_length is not None:
        if constraints.path_length == 0:
            raise ProfileViolation("the issuer's pathLenConstraint 0 forbids issuing CA certificates",
                                   rule="path_length", detail_zh="签发机构的路径长度约束为 0，不能签发 CA 证书")
        if path_length is None or path_length >= constraints.path_length:
            raise ProfileViolation(
                f"path_length must be below the issuer's pathLenConstraint {constraints.path_length}",
                rule="path_length", detail_zh=f"路径长度必须小于签发机构的约束 {constraints.path_length}",
            )


def build_certificate(
    profile: Profile,
    *,
    issuer_cert: x509.Certificate | None,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    subject: Mapping[str, str | Sequence[str]],
    public_key: CertificatePublicKeyTypes,
    sans: SubjectAltNames | None = None,
    serial: int,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    urls: PublicationURLs | None = None,
    path_length: int | None = None,
    name_constraints: NameConstraints | None = None,
) -> x509.Certificate:
    """Build and sign a certificate of ``profile``.

    ``issuer_cert`` is ``None`` for a self-signed root (``public_key`` must
    then be the public half of ``issuer_key``).  ``urls`` says where the
    issuing CA publishes; it is required unless the profile puts no URL in
    its certificates.  ``path_length`` (CA profiles only) replaces the
    profile's default pathLenConstraint; ``name_constraints`` is allowed by
    profiles with ``name_constraints: true``.  Times must be timezone-aware;
    they are truncated to whole seconds.

    The certificate carries: basicConstraints (critical), keyUsage
    (critical), extendedKeyUsage, subjectKeyIdentifier (RFC 7093 method 1),
    authorityKeyIdentifier (the issuer's SKI), subjectAltName,
    certificatePolicies, nameConstraints (critical), CRL distribution point,
    authorityInfoAccess (OCSP, caIssuers) and id-pkix-ocsp-nocheck, each as
    the profile says.

    Raises:
        ProfileViolation: the request is outside the profile (rules
            ``key_type``, ``validity``, ``subject_*``, ``san_*``,
            ``path_length``, ``name_constraints``, ``issuer_validity``,
            ``issuer_required``, ``self_signed``, ``key_reuse``).
        UnsupportedKey: the subject key can never be certified.
        IssuerInvalid: the issuer certificate and key cannot issue it, or the
            URLs are unusable.
        CAError: a caller bug (naive datetime, serial out of range, missing
            ``urls``).
    """
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 < serial < _SERIAL_LIMIT:
        raise CAError("serial must be a positive integer below 2**159")
    not_before = require_utc(not_before, "not_before")
    not_after = require_utc(not_after, "not_after")
    sans = sans if sans is not None else SubjectAltNames()

    key_type = profile.check_key(public_key)
    subject_values = profile.check_subject(subject)
    profile.check_sans(sans, subject_values)
    profile.check_validity(not_before, not_after)
    if path_length is not None:
        if not profile.ca:
            raise ProfileViolation(
                f"profile {profile.name} is not a CA profile: no path length", rule="path_length",
                detail_zh=f"证书模板 {profile.name} 不是 CA 模板，不能设置路径长度",
            )
        if isinstance(path_length, bool) or not isinstance(path_length, int) or path_length < 0:
            raise ProfileViolation("path_length must be a non-negative integer", rule="path_length",
                                   detail_zh="路径长度必须是非负整数")
    effective_path_length = path_length if path_length is not None else profile.path_length
    if name_constraints is not None and not profile.name_constraints:
        raise ProfileViolation(f"profile {profile.name} does not allow name constraints", rule="name_constraints",
                               detail_zh=f"证书模板 {profile.name} 不允许名称约束")
    _check_issuer(profile, issuer_cert, issuer_key, public_key, not_after, effective_path_length)
    wants_urls = not profile.self_signed and (profile.ca_issuers_url or profile.ocsp_url or profile.crl_url)
    if wants_urls and urls is None:
        raise CAError(f"profile {profile.name} needs publication URLs")

    subject_name = build_name(subject_values)
    ski = x509.SubjectKeyIdentifier(key_identifier(public_key))
    if issuer_cert is None:
        issuer_name = subject_name
        aki = x509.AuthorityKeyIdentifier(ski.digest, None, None)
    else:
        issuer_name = issuer_cert.subject
        try:
            issuer_ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            issuer_ski = key_identifier(issuer_cert.public_key())
        aki = x509.AuthorityKeyIdentifier(issuer_ski, None, None)

    builder = (
        x509.CertificateBuilder()
        .issuer_name(issuer_name)
        .subject_name(subject_name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=profile.ca, path_length=effective_path_length if profile.ca else None),
                       critical=True)
        .add_extension(profile.key_usage_extension(key_type), critical=True)
    )
    if profile.extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.extended_key_usage)),
                                        critical=profile.extended_key_usage_critical)
    builder = builder.add_extension(ski, critical=False).add_extension(aki, critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans.general_names()), critical=False)
    if profile.policies:
        policies = [x509.PolicyInformation(oid, None) for oid in profile.policies]
        builder = builder.add_extension(x509.CertificatePolicies(policies), critical=False)
    if name_constraints is not None:
        builder = builder.add_extension(name_constraints.extension(), critical=True)
    if urls is not None and not profile.self_signed:
        if profile.crl_url:
            point = x509.DistributionPoint([x509.UniformResourceIdentifier(urls.crl)], None, None, None)
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        access = []
        if profile.ocsp_url:
            access.append(x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                                 x509.UniformResourceIdentifier(urls.ocsp)))
        if profile.ca_issuers_url:
            access.append(x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                                 x509.UniformResourceIdentifier(urls.ca_issuers)))
        if access:
            builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    if profile.ocsp_no_check:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    return builder.sign(issuer_key, signature_hash(issuer_key))  # type: ignore[arg-type]
