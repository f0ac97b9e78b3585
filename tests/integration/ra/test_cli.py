"""``hengxin request submit|list|approve|reject`` against an instance made by ``hengxin init``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.ca.test_cli import HENGXIN
from tests.integration.ra.conftest import make_csr


def run(*args: str, cwd: Path, user: str = "root") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14", "USER": user, "SUDO_USER": user}
    return subprocess.run([HENGXIN, "--config", "var/hengxin.toml", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_operators_submit_list_approve_and_reject_from_the_command_line(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    added = run("user", "add", "zhangwei", "--name", "张伟", "--email", "zhangwei@czj.gov.example", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    (tmp_path / "z.csr").write_text(make_csr("Free Text"))
    submitted = run("request", "submit", "-p", "person-sign", "--for", "user:zhangwei", "-r", "签署公文",
                    "--csr", "z.csr", cwd=tmp_path, user="alice")
    assert submitted.returncode == 0, submitted.stderr
    request_id = submitted.stdout.split("\t")[0]
    assert "pending" in submitted.stdout
    own = run("request", "approve", request_id, cwd=tmp_path, user="alice")
    assert own.returncode == 1 and "[ra.self_approval]" in own.stderr
    approved = run("request", "approve", request_id, cwd=tmp_path, user="bob")
    assert approved.returncode == 0, approved.stderr
    assert "\tissued\t" in approved.stdout and "cli:bob" in approved.stdout
    second = run("request", "submit", "-p", "person-sign", "--for", "zhangwei", "-r", "x", "--csr", "z.csr",
                 cwd=tmp_path, user="alice")
    rejected = run("request", "reject", second.stdout.split("\t")[0], "-r", "材料不全", cwd=tmp_path, user="bob")
    assert rejected.returncode == 0 and "\trejected\t" in rejected.stdout
    listed = run("request", "list", "--status", "issued", cwd=tmp_path)
    assert listed.stdout.count("\n") == 1 and listed.stdout.startswith(f"{request_id}\t")
