"""Deployment tests: Ansible applied to this machine.  They run after every other test.

The tests are marked ``deploy`` and moved to the end of the session whatever
the collection order (``tests/deploy`` sorts before ``tests/unit``), because
they install packages and take minutes; ``-m "not deploy"`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.deployment import Deployment, create_deployment, remove_deployment

DEPLOY_DIRECTORY = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy: Ansible deployment tests, run last (tests/deploy)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deploy = [item for item in items if DEPLOY_DIRECTORY in Path(str(item.fspath)).resolve().parents]
    for item in deploy:
        item.add_marker(pytest.mark.deploy)
    others = [item for item in items if item not in deploy]
    items[:] = others + deploy


_failure: list[BaseException] = []


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    """site.yml applied under a temporary prefix, its services started from their units.

    A failed deployment is reported once and not retried for every test.
    """
    if _failure:
        pytest.fail(f"the deployment failed (see the first error): {_failure[0]}"[:2000], pytrace=False)
    try:
        deployed = create_deployment()
    except BaseException as error:
        _failure.append(error)
        raise
    try:
        yield deployed
    finally:
        remove_deployment(deployed)
