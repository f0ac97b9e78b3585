"""The [backup] configuration section: references, names, paths, and the sample file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from backup.errors import BackupConfigurationError
from backup.restic import Restic, classify_failure
from core.config import BackupSettings, Settings, sample_config


def repositories() -> list[dict[str, Any]]:
    return [
        {"name": "primary", "url": "/srv/backup/hengxin", "password_secret": "repo-primary"},
        {
            "name": "offsite",
            "url": "sftp:backup@dr.example:/srv/hengxin",
            "password_secret": "repo-offsite",
            "role": "copy",
            "options": {"sftp.command": "ssh -p 2222 backup@dr.example -s sftp"},
        },
    ]


def test_a_complete_section_parses_with_defaults() -> None:
    settings = BackupSettings(
        repositories=repositories(),
        jobs=[{"name": "nightly", "repository": "primary", "schedule": "30 2 * * *", "read_data_subset_days": 7}],
    )
    job = settings.jobs[0]
    assert job.retention.policy() == {"keep_daily": 7, "keep_weekly": 5, "keep_monthly": 12}
    assert job.copy_to is None and job.sources == []
    assert settings.repositories[1].role == "copy"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"jobs": [{"name": "n", "repository": "offsite"}]}, "is not a configured primary"),
        ({"jobs": [{"name": "n", "repository": "nope"}]}, "is not a configured primary"),
        ({"jobs": [{"name": "n", "repository": "primary", "copy_to": ["primary"]}]}, "is not a configured copy"),
        ({"jobs": [{"name": "n", "repository": "primary"}, {"name": "n", "repository": "primary"}]}, "two jobs"),
        ({"repositories": repositories() + [repositories()[0]]}, "two repositories"),
        ({"extra_paths": ["relative/path"]}, "absolute"),
        ({"state_dir": "relative"}, "absolute"),
        ({"repositories": [{**repositories()[0], "url": "rest:https://user:pw@host/"}]}, "must not contain a password"),
        ({"repositories": [{**repositories()[0], "options": {"bad name": "x"}}]}, "restic option name"),
        ({"jobs": [{"name": "n", "repository": "primary", "bogus": 1}]}, "Extra inputs"),
    ],
)
def test_invalid_sections_are_refused(change: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"repositories": repositories(), **change}
    with pytest.raises(ValidationError, match=message):
        BackupSettings(**values)


def test_the_sample_configuration_has_a_valid_backup_section() -> None:
    text = sample_config()
    assert "[backup]" in text
    Settings(**tomllib.loads(text))


def test_restic_options_are_validated_and_passwords_scrubbed_from_messages_do_not_hide_the_cause(
    tmp_path: Path,
) -> None:
    password_file = tmp_path / "p"
    with pytest.raises(BackupConfigurationError):
        Restic("/r", password_file, options={"sftp.command": "ssh -o Ciphers=a,b host"})
    with pytest.raises(BackupConfigurationError):
        Restic("/r", password_file, options={"Not An Option": "x"})
    assert Restic("/r", password_file, options={"sftp.command": "ssh host -s sftp"}).options

    # The password "wrong" is scrubbed from restic's message, yet the failure is still a wrong password.
    raw = "Fatal: wrong password or no key found\n"
    error = classify_failure("snapshots", 1, raw.replace("wrong", "***"), unscrubbed=raw)
    assert error.code == "backup.wrong_password"
    assert "wrong" not in error.extra["stderr"]
