"""GroupCommit: concurrent callers share one write; each gets its own result or error, only after the write."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives import serialization

from ca._common import certificate_pem
from ca.errors import CAError
from ca.store import GroupCommit


class Recorder:
    """A write function that records its groups; the first group is held until ``release`` is set."""

    def __init__(self, hold_first: bool = False) -> None:
        self.groups: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.hold_first = hold_first

    def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.entered.set()
        if self.hold_first and not self.groups:
            assert self.release.wait(10)
        self.groups.append(list(items))
        return [ValueError(f"refused {i}") if i < 0 else i * 10 for i in items]


def wait_for_queue(commit: GroupCommit[int, int], length: int) -> None:
    deadline = time.monotonic() + 10
    while len(commit._queue) < length:
        assert time.monotonic() < deadline, "the callers did not queue"
        time.sleep(0.005)


def test_a_lone_caller_writes_its_item_at_once_in_a_group_of_its_own() -> None:
    write = Recorder()
    commit = GroupCommit(write)
    assert commit.submit(4) == 40
    assert commit.submit(5) == 50
    assert write.groups == [[4], [5]]
    assert (commit.groups, commit.items) == (2, 2)


def test_callers_arriving_during_a_write_share_the_next_group_and_each_gets_its_result() -> None:
    write = Recorder(hold_first=True)
    commit = GroupCommit(write)
    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(commit.submit, 1)
        assert write.entered.wait(10)
        rest = [pool.submit(commit.submit, i) for i in range(2, 10)]
        wait_for_queue(commit, 8)
        assert not any(f.done() for f in rest)  # nobody returns before their own group is written
        write.release.set()
        assert first.result(10) == 10
        assert sorted(f.result(10) for f in rest) == [i * 10 for i in range(2, 10)]
    assert write.groups[0] == [1]
    assert sorted(write.groups[1]) == list(range(2, 10))
    assert (commit.groups, commit.items) == (2, 9)


def test_groups_are_no_larger_than_max_batch() -> None:
    write = Recorder(hold_first=True)
    commit = GroupCommit(write, max_batch=3)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(commit.submit, 0)]
        assert write.entered.wait(10)
        futures += [pool.submit(commit.submit, i) for i in range(1, 8)]
        wait_for_queue(commit, 7)
        write.release.set()
        assert sorted(f.result(10) for f in futures) == [i * 10 for i in range(8)]
    assert [len(g) for g in write.groups] == [1, 3, 3, 1]


def test_an_item_refused_by_the_write_fails_only_its_own_caller() -> None:
    write = Recorder(hold_first=True)
    commit = GroupCommit(write)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(commit.submit, 1)
        assert write.entered.wait(10)
        good, bad, other = (pool.submit(commit.submit, i) for i in (2, -3, 4))
        wait_for_queue(commit, 3)
        write.release.set()
        assert (first.result(10), good.result(10), other.result(10)) == (10, 20, 40)
        with pytest.raises(ValueError, match="refused -3"):
            bad.result(10)


def test_a_failed_write_fails_every_caller_of_its_group_and_the_next_group_goes_ahead() -> None:
    calls: list[list[int]] = []
    entered, release = threading.Event(), threading.Event()

    def write(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            entered.set()
            assert release.wait(10)
            return [i for i in items]
        if len(calls) == 2:
            raise CAError("the database went away", detail_zh="数据库不可用")
        return [i for i in items]

    commit = GroupCommit(write)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(commit.submit, 1)
        assert entered.wait(10)
        doomed = [pool.submit(commit.submit, i) for i in (2, 3)]
        wait_for_queue(commit, 2)
        release.set()
        assert first.result(10) == 1
        errors = []
        for future in doomed:
            with pytest.raises(CAError, match="the database went away") as raised:
                future.result(10)
            errors.append(raised.value)
    # Each caller raises its own exception object; the copies name the original as their cause.
    assert errors[0] is not errors[1]
    assert any(e.__cause__ is not None for e in errors)
    assert commit.submit(7) == 7  # the committer is free again


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GroupCommit(lambda items: items, max_batch=0)


def test_certificate_pem_is_byte_for_byte_what_cryptography_writes(pki) -> None:
    for certificate in (pki.root.certificate, pki.sub_ca.certificate, pki.ocsp_responder.certificate):
        der = certificate.public_bytes(serialization.Encoding.DER)
        assert certificate_pem(der) == certificate.public_bytes(serialization.Encoding.PEM)
