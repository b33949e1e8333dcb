"""The audit report when no image could be read: failed rows, and a report that says so."""
from spectral_xai.audit import AuditConfig, run_audit

from helpers import AUDIT_MODEL


def test_a_dataset_of_only_corrupt_files_gives_failed_rows_and_a_report(tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "a.jpg").write_bytes(b"not an image")
    (data / "b.png").write_bytes(b"")
    table = run_audit(AuditConfig(data=str(data), out=str(tmp_path / "run"), model=AUDIT_MODEL, size=24, samples=2,
                                  quiet=True, num_workers=0))["table"]
    assert table["status"].tolist() == ["failed", "failed"] and table["error"].str.len().min() > 0
    html = (tmp_path / "run" / "report.html").read_text()
    assert "no image was audited successfully" in html and "a.jpg" in html
