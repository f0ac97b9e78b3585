"""Fuzz CSR parsing: bytes as PEM and as base64 DER to POST /api/v1/certificates, in-process.

Usage: python fuzz/fuzz_csr.py [--runs N] [--seconds S] [--engine atheris|hypothesis] [libFuzzer options]
A 5xx, a traceback in the answer or an unexpected exception stops the run with the input saved (atheris).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz._app import check_clean, make_client  # noqa: E402
from fuzz._common import main  # noqa: E402
from tests.reliability.conftest import csr_pem  # noqa: E402

CLIENT = make_client()


def one_input(data: bytes) -> None:
    text = data.decode("latin-1")
    for csr in (text, base64.b64encode(data).decode()):
        response = CLIENT.post("/api/v1/certificates", json={"profile": "server-tls", "csr": csr})
        check_clean(response)
        if response.status_code not in (201, 400):
            raise RuntimeError(f"unexpected {response.status_code}: {response.text[:300]}")


if __name__ == "__main__":
    main(one_input, [csr_pem("fuzz.example.gov.cn").encode()])
