"""Fuzz RFC 3161: bytes to POST /tsa, in-process; every answer must be a TimeStampResp.

Usage: python fuzz/fuzz_tsa.py [--runs N] [--seconds S] [--engine atheris|hypothesis] [libFuzzer options]
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asn1crypto import algos, cms, core, tsp  # noqa: E402

from fuzz._app import check_clean, make_client  # noqa: E402
from fuzz._common import main  # noqa: E402

CLIENT = make_client()


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp with the token OPTIONAL, as the RFC says (asn1crypto makes it mandatory)."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def one_input(data: bytes) -> None:
    response = CLIENT.post("/tsa", content=data, headers={"Content-Type": "application/timestamp-query"})
    check_clean(response)
    if response.status_code == 200:
        native = TimeStampResp.load(response.content).native
        status, token = native["status"]["status"], native["time_stamp_token"]
        if (status in ("granted", "granted_with_mods")) == (token is None):
            raise RuntimeError(f"status {status} with token {token is not None}")
    elif response.status_code not in (400, 413, 415):
        raise RuntimeError(f"unexpected {response.status_code}")


SEED = tsp.TimeStampReq({"version": 1, "message_imprint": {
    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}), "hashed_message": hashlib.sha256(b"x").digest()},
    "nonce": 1, "cert_req": True}).dump()

if __name__ == "__main__":
    main(one_input, [SEED])
