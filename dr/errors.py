"""Errors of the disaster-recovery drills.

A drill ends in one of three results; the error that ended it decides which:
:class:`DrillCouldNotRun` (and errors classified as preconditions, such as a
wrong repository password or a missing secret) gives *could not run*, every
other failure gives *failed*.
"""

from __future__ import annotations

from core.errors import Category, HengxinError


class DRError(HengxinError):
    code = "dr.error"
    category = Category.INTERNAL
    title_en = "Disaster-recovery drill error"
    title_zh = "灾备演练错误"


class DrillCouldNotRun(DRError):
    """A precondition of the drill is missing: the drill proves nothing either way."""

    code = "dr.could_not_run"
    category = Category.CONFIGURATION
    title_en = "The drill could not run"
    title_zh = "演练无法运行"


class SecretsMissing(DrillCouldNotRun):
    code = "dr.secrets_missing"
    title_en = "A secret the drill needs is missing"
    title_zh = "演练所需的机密缺失"


class DrillFailed(DRError):
    """The restore or the restored platform did not pass a step."""

    code = "dr.drill_failed"
    category = Category.CONFLICT
    title_en = "The drill failed"
    title_zh = "演练失败"


class RowCountsDiffer(DrillFailed):
    code = "dr.row_counts_differ"
    title_en = "Restored row counts differ from the manifest"
    title_zh = "恢复的数据行数与备份清单不符"


class SandboxFailed(DrillFailed):
    code = "dr.sandbox_failed"
    title_en = "The sandbox instance did not start"
    title_zh = "沙箱实例未能启动"


class ProbeFailed(DrillFailed):
    code = "dr.probe_failed"
    title_en = "A probe of the restored platform failed"
    title_zh = "对恢复平台的探测失败"


class DrillNotFound(DRError):
    code = "dr.drill_not_found"
    category = Category.NOT_FOUND
    title_en = "No such drill"
    title_zh = "演练不存在"


class DrillRunning(DRError):
    code = "dr.drill_running"
    category = Category.CONFLICT
    title_en = "A drill is already running"
    title_zh = "已有演练正在运行"


class ReportUnavailable(DRError):
    code = "dr.report_unavailable"
    category = Category.NOT_FOUND
    title_en = "The drill has no report of this kind"
    title_zh = "该演练没有此类报告"
