"""Fuzz OCSP request parsing: bytes to POST /ocsp and GET /ocsp/<base64>, in-process.

Usage: python fuzz/fuzz_ocsp.py [--runs N] [--seconds S] [--engine atheris|hypothesis] [libFuzzer options]
Every answer must be 200 with a parseable OCSPResponse (a protocol error is fine).
"""

from __future__ import annotations

import base64
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402

from fuzz._app import check_clean, make_client  # noqa: E402
from fuzz._common import main  # noqa: E402

CLIENT = make_client()


def one_input(data: bytes) -> None:
    encoded = urllib.parse.quote(base64.b64encode(data).decode(), safe="")
    for response in (CLIENT.post("/ocsp", content=data, headers={"Content-Type": "application/ocsp-request"}),
                     CLIENT.get(f"/ocsp/{encoded}")):
        check_clean(response)
        if response.status_code == 200:
            ocsp.load_der_ocsp_response(response.content)  # raises if the answer is not an OCSPResponse
        elif response.status_code not in (400, 404, 405, 413, 414):
            raise RuntimeError(f"unexpected {response.status_code}")


def _seed() -> bytes:
    issuer = x509.load_der_x509_certificate(CLIENT.get("/ca/issuing.crt").content)
    request = ocsp.OCSPRequestBuilder().add_certificate(issuer, issuer, hashes.SHA256()).build()
    return request.public_bytes(serialization.Encoding.DER)


if __name__ == "__main__":
    main(one_input, [_seed()])
