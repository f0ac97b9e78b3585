"""The playbooks parse, and ansible-lint's production profile passes offline."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.deploy.harness import ANSIBLE_DIR, ANSIBLE_PLAYBOOK, INVENTORIES, PLAYBOOKS, REPOSITORY, ansible_environment

# Debian's `ansible` package ships the collections the roles use here.
DEBIAN_COLLECTIONS = "/usr/lib/python3/dist-packages"


@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_syntax_check(playbook: str, inventory: str) -> None:
    assert os.path.exists(ANSIBLE_PLAYBOOK), "ansible-playbook is missing: apt-get install ansible"
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "--syntax-check", "-i", f"inventories/{inventory}/hosts.yml", playbook],
        cwd=ANSIBLE_DIR,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_passes_offline() -> None:
    lint = REPOSITORY / ".venv/bin/ansible-lint"
    assert lint.exists(), "ansible-lint is missing: .venv/bin/pip install ansible-lint"
    assert os.path.isdir(f"{DEBIAN_COLLECTIONS}/ansible_collections/community/postgresql"), (
        "the collections are missing: apt-get install ansible"
    )
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=DEBIAN_COLLECTIONS, NO_COLOR="1")
    result = subprocess.run(
        [str(lint), "--offline", "--profile", "production", "--format", "pep8"],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


def test_example_vault_files_hold_only_placeholders() -> None:
    for inventory in INVENTORIES:
        example = ANSIBLE_DIR / f"inventories/{inventory}/group_vars/all/vault.yml.example"
        values = [
            line.split(":", 1)[1].strip()
            for line in example.read_text(encoding="utf-8").splitlines()
            if line.startswith("vault_")
        ]
        assert values and set(values) == {"CHANGE-ME"}
        plain = ANSIBLE_DIR / f"inventories/{inventory}/group_vars/all/vault.yml"
        assert not plain.exists() or plain.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;")
