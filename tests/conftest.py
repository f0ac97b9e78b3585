"""Root conftest: fixture modules live in tests/fixtures/, one per real service."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.slapd",
    "tests.fixtures.restic",
    "tests.fixtures.pki",
    "tests.fixtures.chrony",
    "tests.fixtures.softhsm",
    "tests.fixtures.openbao",
]
