"""Configuration values of a timestamp authority: accuracy and policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from timestamp.algorithms import DEFAULT_HASH_ALGORITHMS, hash_algorithm
from timestamp.errors import TSAConfigurationError, UnsupportedAlgorithm

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def check_oid(value: str, what: str) -> str:
    """Return ``value`` if it is a dotted object identifier.

    Raises :class:`TSAConfigurationError` otherwise.
    """
    if not isinstance(value, str) or not _OID.match(value):
        raise TSAConfigurationError(
            f"{what} {value!r} is not a dotted object identifier", detail_zh=f"{what} {value!r} 不是有效的对象标识符"
        )
    return value


@dataclass(frozen=True)
class Accuracy:
    """The accuracy the TSA declares in every token (RFC 3161 ``Accuracy``).

    ``millis`` and ``micros`` are 0..999; at least one field is non-zero.  Zero
    fields are omitted from the encoding, as RFC 3161 reads a missing field as 0.
    Raises :class:`TSAConfigurationError` when out of range.
    """

    seconds: int = 1
    millis: int = 0
    micros: int = 0

    def __post_init__(self) -> None:
        if self.seconds < 0 or not 0 <= self.millis <= 999 or not 0 <= self.micros <= 999:
            raise TSAConfigurationError(
                "accuracy fields out of range (seconds >= 0, millis and micros 0..999)", detail_zh="精度字段超出范围"
            )
        if self.seconds == self.millis == self.micros == 0:
            raise TSAConfigurationError("accuracy must be greater than zero", detail_zh="精度必须大于零")

    def as_timedelta(self) -> timedelta:
        """Return the accuracy as a duration."""
        return timedelta(seconds=self.seconds, milliseconds=self.millis, microseconds=self.micros)

    def as_seconds(self) -> float:
        """Return the accuracy in seconds."""
        return self.seconds + self.millis / 1_000 + self.micros / 1_000_000

    @property
    def precision_digits(self) -> int:
        """Fraction digits of genTime that this accuracy justifies (0, 3 or 6)."""
        if self.micros:
            return 6
        if self.millis:
            return 3
        return 0


@dataclass(frozen=True)
class TSAPolicy:
    """What the TSA accepts and what it writes into every token.

    ``default_policy`` is used when a request names none; a request naming a
    policy outside ``accepted_policies`` (which always contains the default) is
    rejected with ``unacceptedPolicy``.  ``hash_algorithms`` are the accepted
    message-imprint hashes; SHA-1 and MD5 cannot be configured.
    ``time_precision_digits`` (0..6) is the number of fraction digits of genTime;
    ``None`` derives it from the accuracy.  ``include_signing_time`` adds the CMS
    signing-time attribute, ``include_tsa_name`` the TSTInfo ``tsa`` field (the
    certificate subject).  ``signature_digest`` overrides the signature hash
    chosen from the key (EC and RSA only).

    Raises :class:`TSAConfigurationError` for malformed OIDs, unknown or refused
    hashes, or an out-of-range precision.
    """

    default_policy: str
    accepted_policies: frozenset[str] = field(default_factory=frozenset)
    hash_algorithms: frozenset[str] = DEFAULT_HASH_ALGORITHMS
    accuracy: Accuracy = field(default_factory=Accuracy)
    time_precision_digits: int | None = None
    include_signing_time: bool = False
    include_tsa_name: bool = False
    signature_digest: str | None = None

    def __post_init__(self) -> None:
        check_oid(self.default_policy, "default policy")
        accepted = frozenset(check_oid(p, "accepted policy") for p in self.accepted_policies)
        object.__setattr__(self, "accepted_policies", accepted | {self.default_policy})
        names = set()
        for name in self.hash_algorithms:
            try:
                names.add(hash_algorithm(name).name)
            except UnsupportedAlgorithm as e:
                raise TSAConfigurationError(f"accepted hash algorithms: {e.detail}", detail_zh=e.detail_zh) from e
        if not names:
            raise TSAConfigurationError(
                "at least one hash algorithm must be accepted", detail_zh="至少需要接受一种哈希算法"
            )
        object.__setattr__(self, "hash_algorithms", frozenset(names))
        if self.time_precision_digits is not None and not 0 <= self.time_precision_digits <= 6:
            raise TSAConfigurationError(
                "time precision must be 0 to 6 fraction digits", detail_zh="时间精度必须为 0 到 6 位小数"
            )

    @property
    def precision_digits(self) -> int:
        """Fraction digits of genTime in every token."""
        if self.time_precision_digits is not None:
            return self.time_precision_digits
        return self.accuracy.precision_digits
