"""The registration authority: certificate requests and approvals (``ca/ra.py``), its routes and CLI.

``open_hook`` builds :class:`ca.ra.RegistrationAuthority` into
``platform.services["ra"]`` with a directory lookup (the ``ca`` package does not
import ``directory``), and registers a status listener on the directory so a
disabled user's certificates are revoked.  Its tables live in the ``ca_ra``
migration branch, in ``ca/migrations``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from api.platform import Platform
from core.errors import HengxinError

if TYPE_CHECKING:
    from fastapi import APIRouter

    from ca.ra import DirectoryEntry, RegistrationAuthority

log = logging.getLogger("hengxin.ra")

SERVICE = "ra"


def directory_lookup(platform: Platform) -> Any:
    """A :data:`ca.ra.DirectoryLookup` backed by the directory service (None for an unknown login)."""
    from ca.ra import DirectoryEntry
    from directory.service_errors import UserNotFound

    def lookup(login: str) -> DirectoryEntry | None:
        directory = platform.services["directory"]
        try:
            user = directory.get_user(login)
        except UserNotFound:
            return None
        return DirectoryEntry(
            login=user.login, display_name=user.display_name, email=user.email,
            department_path=tuple(user.department_path),
            active=user.status == "active" and not user.expired,
        )

    return lookup


def open_hook(platform: Platform) -> None:
    from ca.ra import RegistrationAuthority

    ca = platform.services.get("ca")
    directory = platform.services.get("directory")
    if ca is None or directory is None:
        return
    service = RegistrationAuthority(
        sessions=platform.sessions, ca=ca, audit=platform.require_audit(), alerts=platform.alerts,
        clock=platform.clock, settings=platform.settings.ra, lookup=directory_lookup(platform),
    )
    platform.services[SERVICE] = service

    def on_status(user: Any, actor: str) -> None:
        # Runs after the directory committed the change: a failure here must not hide the change itself.
        try:
            service.on_user_status(user.login, user.status, actor=actor)
        except HengxinError as e:
            log.error("certificate revocation after a status change failed", extra={"code": e.code})
            platform.alerts.raise_alert("ra.revocation_failed", "critical",
                                        f"the certificates of {user.login} may not all be revoked",
                                        login=user.login, code=e.code)

    directory.add_status_listener(on_status)

    async def sweep() -> None:
        # The listener runs after the disable commits; if the process died in between, this catches up.
        while True:
            await asyncio.sleep(platform.settings.ra.sweep_interval_seconds)
            try:
                await asyncio.to_thread(sweep_disabled_users, platform)
            except Exception:  # noqa: BLE001 - the loop must survive a bad cycle; the cause is logged
                log.exception("sweep of disabled users' certificates failed")

    platform.services.setdefault("background_tasks", []).append(sweep)


def sweep_disabled_users(platform: Platform) -> list[int]:
    """Revoke the certificates (and cancel the requests) of every disabled user that still has them.

    Idempotent: users whose certificates are already revoked cost one search each.  Returns the ids
    of the certificates revoked by this sweep.
    """
    service = ra_service(platform)
    directory = platform.services["directory"]
    revoked: list[int] = []
    after: str | None = None
    while True:
        users = directory.list_users(status="disabled", after=after, limit=200)
        for user in users:
            revoked += service.on_user_status(user.login, "disabled", actor="system:ra-sweep")
        if len(users) < 200:
            return revoked
        after = users[-1].login


def ra_service(platform: Platform) -> RegistrationAuthority:
    from core.errors import ConfigurationError

    service = platform.services.get(SERVICE)
    if service is None:
        raise ConfigurationError("the registration authority is not available: run `hengxin init` first")
    return service  # type: ignore[no-any-return]


def router() -> APIRouter:
    from api.routes.ra import router as ra_router

    return ra_router


CLI_NAME = "request"


def __getattr__(name: str) -> Any:
    # Imported lazily: api.cli imports this module while it is itself being imported.
    if name == "cli":
        from api.cli_ra import app

        return app
    raise AttributeError(name)



