"""Import over the API: upload, file checks at the door, the job and its report."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.jobs.service import run_job
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Job
from tests.api.conftest import bearer
from tests.factories import make_token, make_workspace

CSV = "姓名,手机,京东\n陈静,13800138000,jd_c\n李娜,abc,\n陈静,+86 13800138000,jd_c2\n".encode()


def _headers(db: Session, clock: FrozenClock, scopes: list[str] | None = None) -> tuple[int, dict[str, str]]:
    ws = make_workspace(db, clock=clock)
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return ws.id, bearer(token)


def test_upload_runs_as_a_job_with_a_report(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws_id, headers = _headers(db, clock)
    response = client.post(
        "/api/v1/imports",
        headers=headers,
        files={"file": ("c.csv", CSV, "text/csv")},
        data={"mapping": json.dumps({"京东": "identity:jd"})},
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    run_job(job_id)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "succeeded"
    result = job["result"]
    assert (result["created"], result["merged"], result["rejected"]) == (1, 1, 1)
    assert result["rejections"] == [{"line": 3, "column": "手机", "reason": "invalid phone number"}]
    assert db.scalar(select(func.count()).select_from(Customer).where(Customer.workspace_id == ws_id)) == 1


def test_bad_uploads_are_4xx_and_leave_nothing(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws_id, headers = _headers(db, clock)
    wrong_type = client.post("/api/v1/imports", headers=headers, files={"file": ("c.pdf", b"%PDF", "application/pdf")})
    assert (wrong_type.status_code, wrong_type.json()["error"]["details"]) == (422, {"field": "file"})
    too_big = client.post(
        "/api/v1/imports", headers=headers, files={"file": ("c.csv", b"a,b\n" + b"x" * (1 << 20), "text/csv")}
    )
    assert too_big.status_code == 413
    wrong_encoding = client.post(
        "/api/v1/imports", headers=headers, files={"file": ("c.csv", CSV, "text/csv")}, data={"encoding": "ascii"}
    )
    assert wrong_encoding.status_code == 422
    bad_gbk = client.post(
        "/api/v1/imports",
        headers=headers,
        files={"file": ("c.csv", "手机\n13800138000\n".encode("gbk"), "text/csv")},
        data={"encoding": "utf-8"},
    )
    assert (bad_gbk.status_code, bad_gbk.json()["error"]["code"]) == (422, "invalid_file")
    bad_mapping = client.post(
        "/api/v1/imports", headers=headers, files={"file": ("c.csv", CSV, "text/csv")}, data={"mapping": "{oops"}
    )
    assert bad_mapping.json()["error"]["details"] == {"field": "mapping"}
    missing = client.post("/api/v1/imports", headers=headers)
    assert missing.status_code == 422
    assert db.scalar(select(func.count()).select_from(Job).where(Job.workspace_id == ws_id)) == 0


def test_import_needs_import_scope(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _headers(db, clock, scopes=["customers:read", "customers:write"])
    response = client.post("/api/v1/imports", headers=headers, files={"file": ("c.csv", CSV, "text/csv")})
    assert response.status_code == 403


def test_the_upload_is_deleted_once_its_import_ran(client: TestClient, db: Session, clock: FrozenClock) -> None:
    from pathlib import Path

    _, headers = _headers(db, clock)
    job_id = client.post("/api/v1/imports", headers=headers, files={"file": ("c.csv", CSV, "text/csv")}).json()["id"]
    path = Path(db.get(Job, job_id).args["path"])  # type: ignore[union-attr]
    assert path.exists()
    run_job(job_id)
    assert not path.exists()
