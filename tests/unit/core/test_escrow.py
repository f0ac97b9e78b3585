import itertools

import pytest

from core.escrow import EscrowError, Share, combine, split


def test_any_threshold_subset_recovers_the_secret() -> None:
    secret = "主口令 correct horse battery staple".encode()
    shares = split(secret, 3, 5)
    for subset in itertools.combinations(shares, 3):
        assert combine(list(subset)) == secret
    assert combine(shares) == secret


def test_shares_round_trip_through_text() -> None:
    shares = split(b"1234", 2, 3)
    decoded = [Share.decode(s.encode()) for s in shares[:2]]
    assert combine(decoded) == b"1234"
    # Custodians may type them with spaces or line breaks.
    spaced = " ".join(shares[2].encode()[i:i + 5] for i in range(0, len(shares[2].encode()), 5))
    assert Share.decode(spaced) == shares[2]


def test_too_few_shares_are_refused() -> None:
    shares = split(b"secret value", 3, 5)
    with pytest.raises(EscrowError, match="3 shares are needed, 2 were given"):
        combine(shares[:2])


def test_duplicate_and_mixed_shares_are_refused() -> None:
    first, second = split(b"alpha secret", 2, 3), split(b"bravo secret", 2, 3)
    with pytest.raises(EscrowError, match="twice"):
        combine([first[0], first[0]])
    with pytest.raises(EscrowError, match="different secrets"):
        combine([first[0], second[1]])


def test_a_wrong_share_is_detected_not_silently_combined() -> None:
    shares = split(b"the real secret", 2, 3)
    forged = Share(shares[1].threshold, shares[1].index, shares[1].set_id,
                   bytes([shares[1].data[0] ^ 1]) + shares[1].data[1:])
    with pytest.raises(EscrowError, match="do not reproduce"):
        combine([shares[0], forged])


def test_a_mistyped_share_fails_its_checksum() -> None:
    text = split(b"abc", 2, 2)[0].encode()
    position = text.rindex(".") - 3
    mistyped = text[:position] + ("A" if text[position] != "A" else "B") + text[position + 1:]
    with pytest.raises(EscrowError, match="checksum"):
        Share.decode(mistyped)


def test_one_share_reveals_nothing_derived_from_the_secret() -> None:
    # Every possible 1-byte secret is equally consistent with a single share of a 2-of-n split.
    share = split(b"7", 2, 3)[0]
    assert share.set_id and len(share.data) == 1 + 8
    with pytest.raises(EscrowError):
        combine([share])


@pytest.mark.parametrize(("threshold", "count"), [(1, 3), (4, 3), (2, 256)])
def test_bad_parameters(threshold: int, count: int) -> None:
    with pytest.raises(EscrowError):
        split(b"x", threshold, count)
