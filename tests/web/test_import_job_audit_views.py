"""Import upload and mapping, the job pages and the audit log, through the console."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.jobs.service import run_job
from siyu.models import Job, Role, User, Workspace
from tests.web.conftest import login

CSV = "姓名,手机号,城市,会员等级\n林小姐,13800138000,杭州,金卡\n周先生,12345,上海,银卡\n王女士,13900139000,北京,金卡\n"


def _upload(client: TestClient, token: str, body: bytes, name: str = "客户.csv") -> object:
    return client.post("/imports", data={"csrf_token": token}, files={"file": (name, body, "text/csv")})


def test_upload_shows_encoding_headers_guessed_targets_and_samples(
    client: TestClient, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    page = client.post(
        "/imports", data={"csrf_token": token}, files={"file": ("客户.csv", CSV.encode("gbk"), "text/csv")}
    )
    assert page.status_code == 200
    text = page.text
    assert 'id="detected-encoding">gb18030<' in text or 'id="detected-encoding">gbk<' in text
    for header in ("姓名", "手机号", "城市", "会员等级"):
        assert f"<th>{header}</th>" in text
    assert '<option value="phone" selected>' in text
    assert '<option value="" selected>' in text  # 会员等级 is not guessed: ignored
    assert '<option value="identity:taobao"' in text
    assert "林小姐" in text and "王女士" in text


def test_file_level_errors_go_back_to_the_upload_form(
    client: TestClient, settings: object, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    wrong_type = client.post(
        "/imports", data={"csrf_token": token}, files={"file": ("a.pdf", b"%PDF", "application/pdf")}
    )
    assert wrong_type.status_code == 422
    assert "upload a .csv or .xlsx file" in wrong_type.text
    too_large = _upload(client, token, b"phone\n" + b"13800138000\n" * 100_000)
    assert too_large.status_code == 413
    assert "文件过大" in too_large.text
    for response in (wrong_type, too_large):
        assert 'id="upload-form"' in response.text


def test_a_file_without_a_recognised_identity_column_reaches_the_mapping_step(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    page = _upload(client, token, "姓名,联络\n林,13800138000\n".encode())
    assert page.status_code == 200  # type: ignore[attr-defined]
    upload = page.text.split('name="upload" value="')[1].split('"')[0]  # type: ignore[attr-defined]
    fields = {"csrf_token": token, "upload": upload, "filename": "客户.csv", "encoding": ""}
    ignored = client.post("/imports/start", data=fields | {"target_0": "name", "target_1": ""})
    assert ignored.status_code == 422
    assert "no column holds an identity" in ignored.text
    assert db.scalars(select(Job).where(Job.workspace_id == workspace.id)).all() == []
    chosen = client.post("/imports/start", data=fields | {"target_0": "name", "target_1": "phone"})
    assert chosen.status_code == 303


def test_start_enqueues_the_import_job_with_the_chosen_mapping(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    user = user_with_role(Role.OPERATOR)
    token = login(client, user.email)
    page = _upload(client, token, CSV.encode()).text  # type: ignore[attr-defined]
    upload = page.split('name="upload" value="')[1].split('"')[0]
    started = client.post(
        "/imports/start",
        data={
            "csrf_token": token,
            "upload": upload,
            "filename": "客户.csv",
            "encoding": "",
            "target_0": "name",
            "target_1": "phone",
            "target_2": "city",
            "target_3": "tags",
            "dry_run": "on",
        },
    )
    assert started.status_code == 303
    job = db.scalar(select(Job).order_by(Job.id.desc()))
    assert job is not None
    assert started.headers["location"] == f"/jobs/{job.id}"
    assert (job.kind, job.workspace_id, job.status) == ("import_customers", workspace.id, "queued")
    assert job.args["filename"] == "客户.csv"
    assert job.args["actor"]["user_id"] == user.id
    assert job.args["options"] == {
        "encoding": None,
        "mapping": {"姓名": "name", "手机号": "phone", "城市": "city", "会员等级": "tags"},
        "dry_run": True,
    }
    job_page = client.get(f"/jobs/{job.id}").text
    assert 'hx-trigger="every 1s"' in job_page
    assert 'data-status="queued"' in job_page


def test_a_mapping_that_cannot_work_is_shown_again_with_the_message(
    client: TestClient, db: Session, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    page = _upload(client, token, CSV.encode()).text  # type: ignore[attr-defined]
    upload = page.split('name="upload" value="')[1].split('"')[0]
    response = client.post(
        "/imports/start",
        data={
            "csrf_token": token,
            "upload": upload,
            "target_0": "name",
            "target_1": "",
            "target_2": "name",
            "target_3": "",
        },
    )
    assert response.status_code == 422
    assert 'data-error="mapping"' in response.text
    assert db.scalar(select(Job.id)) is None
    forged = client.post("/imports/start", data={"csrf_token": token, "upload": "../../etc/passwd"})
    assert forged.status_code == 422


def test_finished_import_job_shows_counts_and_rejected_rows(
    client: TestClient, db: Session, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    page = _upload(client, token, CSV.encode()).text  # type: ignore[attr-defined]
    upload = page.split('name="upload" value="')[1].split('"')[0]
    fields = {f"target_{i}": t for i, t in enumerate(("name", "phone", "city", "tags"))}
    location = client.post("/imports/start", data={"csrf_token": token, "upload": upload, **fields}).headers["location"]
    job_id = int(location.rsplit("/", 1)[1])
    run_job(job_id)
    page = client.get(location).text
    assert 'data-status="succeeded"' in page
    assert "hx-trigger" not in page.split('id="job-status"')[1].split(">")[0]
    assert 'data-count="created">2<' in page
    assert 'data-count="rejected">1<' in page
    assert '<td class="line">3</td>' in page
    fragment = client.get(location, headers={"HX-Request": "true"}).text
    assert fragment.lstrip().startswith("{") is False and "<html" not in fragment
    assert f'href="/jobs/{job_id}"' in client.get("/jobs").text


def test_audit_log_lists_changes_newest_first_for_admins(
    client: TestClient, db: Session, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.ADMIN).email)
    client.post("/tags/groups", data={"name": "肤质", "csrf_token": token})
    page = client.get("/audit").text
    actions = [chunk.split('"')[0] for chunk in page.split('data-action="')[1:]]
    assert actions == ["create", "login"]
    assert "{&#34;name&#34;:&#34;肤质&#34;}" in page or '{"name":"肤质"}' in page
