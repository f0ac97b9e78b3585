"""Recovery onto a new node: restore a snapshot, verify it, and lay out a ready-to-serve instance.

Unlike a drill, nothing here is a sandbox: the result is the new node's
``data_dir`` with the database, keys and audit segments in place and a
``hengxin.toml`` derived from the restored effective settings (paths moved to
the target; every other option as it was).  The secrets that are not in
backups are *not* written: the operator recombines them from escrow into
``<target>/secrets`` (see docs/dr.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from backup.manifest import verify_tree
from core.secrets import write_private_file
from dr.drill import DrillService, _pick
from dr.errors import DrillFailed
from dr.sandbox import to_toml


def restore_node(
    service: DrillService, *, snapshot: str = "latest", target: Path, repository: str | None = None
) -> dict[str, Any]:
    """Restore ``snapshot`` under ``target`` (which must be empty or absent); returns what was placed where.

    Raises the backup errors (wrong password, damaged files named) and :class:`DrillFailed`.
    """
    target = target.resolve()
    if target.exists() and any(target.iterdir()):
        raise DrillFailed(f"{target} is not empty", detail_zh="目标目录不为空")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.chmod(0o700)
    name = repository or service.default_repository()
    chosen = _pick(service.backup.snapshots(name), snapshot)
    staging = target / "restore"
    staging.mkdir(mode=0o700)
    with service.backup.repository(name, timeout=service.config.step_timeout_seconds) as restic:
        restic.restore(chosen.id, staging)
    manifest = service._manifest(chosen, staging)
    verify_tree(manifest, staging)
    effective = service._effective_settings(manifest, staging)
    data_dir = target / "data"
    data_dir.mkdir(mode=0o700)
    placed: dict[str, str] = {}
    section = manifest.sections.get("database") or {}
    database_dir = service._restored_root(manifest, staging, "database")
    assert database_dir is not None
    dump = database_dir / str(section.get("file", ""))
    database = dict(effective.get("database") or {})
    if section.get("dialect") == "sqlite":
        shutil.copyfile(dump, data_dir / "hengxin.db")
        (data_dir / "hengxin.db").chmod(0o600)
        database.update(url="", admin_url="")
        placed["database"] = str(data_dir / "hengxin.db")
    else:
        shutil.copyfile(dump, target / "hengxin.pgdump")
        placed["database"] = f"{target / 'hengxin.pgdump'} (createdb + pg_restore --no-owner, see docs/dr.md)"
    keys = dict(effective.get("keys") or {})
    keys_root = service._restored_root(manifest, staging, "keys")
    if keys_root is not None:
        shutil.copytree(keys_root, data_dir / "keys")
        (data_dir / "keys").chmod(0o700)
        keys["directory"] = ""
        placed["keys"] = str(data_dir / "keys")
    audit = dict(effective.get("audit") or {})
    segments = service._restored_root(manifest, staging, "audit-segments")
    if segments is not None and segments.exists():
        shutil.copytree(segments, data_dir / "audit-exports")
        placed["audit_segments"] = str(data_dir / "audit-exports")
    audit["export_dir"] = ""
    settings = json.loads(json.dumps(effective))
    settings["instance"] = {**(settings.get("instance") or {}), "data_dir": str(data_dir)}
    settings["database"] = database
    settings["keys"] = keys
    settings["audit"] = audit
    secrets = dict(settings.get("secrets") or {})
    if secrets.get("backend", "file") == "file":
        secrets["directory"] = str(target / "secrets")
        (target / "secrets").mkdir(mode=0o700)
    settings["secrets"] = secrets
    backup = dict(settings.get("backup") or {})
    backup["state_dir"] = ""
    settings["backup"] = backup
    dr = dict(settings.get("dr") or {})
    dr.update(work_dir="", report_dir="")
    settings["dr"] = dr
    config = target / "hengxin.toml"
    write_private_file(config, to_toml(settings).encode("utf-8"))
    shutil.rmtree(staging)
    return {
        "snapshot": chosen.id,
        "snapshot_time": chosen.time.isoformat(),
        "files_verified": len(manifest.files),
        "config": str(config),
        "placed": placed,
        "next": [
            f"put the escrowed secrets (master passphrase ...) into {target / 'secrets'} (0600 files)",
            f"hengxin --config {config} keys list   # fingerprints must match key-inventory.json",
            f"hengxin --config {config} audit verify",
            f"hengxin --config {config} serve",
        ],
    }
