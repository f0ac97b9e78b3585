"""Outbox payloads: JSON that turns back into the same published values, and never holds a password."""

from __future__ import annotations

import json

from directory.ldap_mapping import PublishedCA, PublishedDepartment, PublishedGroup, PublishedUser
from directory.outbox import (
    ca_payload,
    department_payload,
    group_payload,
    published_ca,
    published_department,
    published_group,
    published_user,
    user_payload,
)
from directory.passwords import Argon2Parameters, PasswordHasher


def test_payloads_round_trip_through_json() -> None:
    password_hash = PasswordHasher(Argon2Parameters(1, 64, 1)).hash("Correct-Horse-9")
    user = PublishedUser(
        login="zhangwei",
        display_name="张伟",
        email="zhangwei@例子.中国",
        department_path=("县政府", "财政局"),
        password_hash=password_hash,
        certificates=(b"\x30\x03\x02\x01\x01",),
    )
    department = PublishedDepartment(id="finance", name="财政局", parent_path=("县政府",), description="财政")
    group = PublishedGroup(name="预算组", members=("zhangwei",))
    ca = PublishedCA(name="root", certificate=b"\x30\x00", crl=None)
    for value, to_payload, back in (
        (user, user_payload, published_user),
        (department, department_payload, published_department),
        (group, group_payload, published_group),
        (ca, ca_payload, published_ca),
    ):
        text = json.dumps(to_payload(value), ensure_ascii=False)  # type: ignore[operator]
        assert back(json.loads(text)) == value  # type: ignore[operator]
    text = json.dumps(user_payload(user), ensure_ascii=False)
    assert "Correct-Horse-9" not in text and password_hash in text
