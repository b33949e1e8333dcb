"""Dataset-scale audit: streaming, sharded and resumable, single process or under torchrun.

``run_audit(AuditConfig(data=..., out=...))`` or ``spectral-xai audit DATA --out RUN_DIR``;
``build_report(RUN_DIR)`` or ``spectral-xai report RUN_DIR``.
"""
from .config import AuditConfig
from .report import build_report
from .rundir import RunDirError
from .runner import run_audit

__all__ = ["AuditConfig", "RunDirError", "build_report", "run_audit"]
