"""Fixtures for the signing unit tests: the signing test PKI (see tests/fixtures/signing.py)."""

from tests.fixtures.signing import revocation, sample_pdf, signing_pki, timestamper  # noqa: F401
