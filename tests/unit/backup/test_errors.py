"""The backup error hierarchy: stable, unique codes with English and Chinese titles."""

from __future__ import annotations

import inspect

import backup.errors as errors_module
from backup.errors import BackupError
from core.errors import Category, HengxinError


def backup_errors() -> list[type[BackupError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(cls, BackupError) and cls.__module__ == errors_module.__name__
    ]


def test_every_backup_error_has_a_unique_backup_code_and_both_titles() -> None:
    classes = backup_errors()
    codes = [cls.code for cls in classes]

    assert len(classes) >= 15
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert issubclass(cls, HengxinError)
        assert cls.code.startswith("backup."), cls
        assert cls.title_en and cls.title_zh and cls.title_zh != cls.title_en, cls
        assert isinstance(cls.category, Category)


def test_the_codes_callers_rely_on_are_stable() -> None:
    expected = {
        "BackupError": "backup.error",
        "RepositoryNotFound": "backup.repository_not_found",
        "WrongPassword": "backup.wrong_password",
        "RepositoryLocked": "backup.repository_locked",
        "SourceMissing": "backup.source_missing",
        "ResticMissing": "backup.restic_missing",
        "ResticFailed": "backup.restic_failed",
        "ResticTimeout": "backup.timeout",
        "IntegrityFailed": "backup.integrity_failed",
        "RepositoryUnwritable": "backup.repository_unwritable",
    }
    for name, code in expected.items():
        assert getattr(errors_module, name).code == code


def test_details_and_extras_are_kept() -> None:
    error = errors_module.SourceMissing("backup source /srv/x does not exist", detail_zh="备份源不存在", path="/srv/x")
    assert error.localized_detail("zh-CN") == "备份源不存在"
    assert error.title("en") == "A backup source path does not exist"
    assert error.extra == {"path": "/srv/x"}
