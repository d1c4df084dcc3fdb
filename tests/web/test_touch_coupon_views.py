"""Coupons in the touch console: the journey editor's `coupon` step and `points_expiring` trigger,
and the broadcast wizard's "随消息发放优惠券" template — saved exactly, shown, and kept on edit."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape
from html.parser import HTMLParser
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES
from siyu.kit.clock import FrozenClock
from siyu.models import Broadcast, CouponTemplate, CouponTemplateStatus, Journey, Role, User, Workspace
from tests.api.conftest import bearer
from tests.commerce.coupons.factories import make_template
from tests.factories import actor_for, make_customer, make_staff, make_token
from tests.messaging.factories import make_account, make_content
from tests.segments.factories import make_segment
from tests.web.conftest import login

Users = Callable[..., User]
_DATA = re.compile(r"const DATA = (\{.*?\});\n")
_LABELS = re.compile(r"const L = (\{.*?\});\n")


def _seed(db: Session, workspace: Workspace, clock: FrozenClock) -> dict[str, int]:
    """Two customers in a segment, a sandbox account, a content item using {{ coupon_code }}, a plain
    one, an active coupon template and an archived one."""
    actor = actor_for(workspace)
    customers = [make_customer(db, actor=actor, clock=clock, name=n).customer for n in ("王芳", "李雷")]
    segment = make_segment(db, workspace=workspace, clock=clock, members=[c.id for c in customers], name="老客")
    account = make_account(db, workspace=workspace, clock=clock, name="沙箱")
    coupon_item = make_content(
        db, workspace=workspace, clock=clock, name="领券", body="{{ name }}，券码 {{ coupon_code }}"
    )
    plain = make_content(db, workspace=workspace, clock=clock, name="问候", body="{{ name }}，好久不见")
    template = make_template(db, workspace=workspace, clock=clock, name="满199减20")
    archived = make_template(db, workspace=workspace, clock=clock, name="旧券", status=CouponTemplateStatus.ARCHIVED)
    db.commit()
    return {
        "segment": segment.id,
        "account": account.id,
        "coupon_content": coupon_item.id,
        "plain_content": plain.id,
        "template": template.id,
        "archived": archived.id,
    }


def _count(db: Session, model: type) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


# --- journeys ----------------------------------------------------------------------------------


def _editor(html: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The editor's data (definition, pickers) and labels, as its script receives them."""
    data, labels = _DATA.search(html), _LABELS.search(html)
    assert data is not None and labels is not None
    return json.loads(data.group(1)), json.loads(labels.group(1))


def test_the_journey_editor_offers_the_coupon_step_and_the_points_expiring_trigger(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an active and an archived coupon template
    ids = _seed(db, workspace, clock)
    login(client, user_with_role(Role.OPERATOR).email)
    # when the operator opens a new journey
    response = client.get("/journeys/new")
    # then the step picker has "发券", the trigger picker "积分即将到期", and the coupon picker both
    # templates, the archived one marked so it cannot be chosen
    assert response.status_code == 200
    data, labels = _editor(response.text)
    assert labels["step"]["coupon"] == "发券"
    assert set(labels["step"]) == {"wait", "branch", "split", "send", "tag", "untag", "coupon", "task", "exit"}
    assert labels["trigger"]["points_expiring"] == "积分即将到期"
    assert labels["within_days"] == "到期前天数"
    assert data["catalog"]["coupon_templates"] == [
        {"id": ids["template"], "name": "满199减20", "active": True},
        {"id": ids["archived"], "name": "旧券", "active": False},
    ]
    # and in English too
    csrf = login(client, user_with_role(Role.ADMIN).email)
    client.post("/locale", data={"locale": "en", "next": "/journeys/new", "csrf_token": csrf})
    _, english = _editor(client.get("/journeys/new").text)
    assert (english["step"]["coupon"], english["trigger"]["points_expiring"]) == ("Issue coupon", "Points expiring")
    assert "{{ coupon_code }}" in english["coupon_note"]


def test_a_journey_with_a_coupon_step_and_a_points_expiring_trigger_is_saved_exactly(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when the editor posts "points expiring within 7 days → coupon → send {{ coupon_code }}"
    definition = {
        "trigger": {"type": "points_expiring", "within_days": 7},
        "steps": [
            {"id": "gift", "type": "coupon", "template_id": ids["template"]},
            {"id": "hi", "type": "send", "content_id": ids["coupon_content"]},
        ],
        "goal": {"type": "order"},
    }
    response = client.post(
        "/journeys",
        data={
            "csrf_token": csrf,
            "name": "积分到期提醒",
            "definition": json.dumps(definition),
            "channel_account_ids": str(ids["account"]),
        },
    )
    # then the journey is stored exactly as posted
    assert response.status_code == 303, response.text
    journey = db.scalar(select(Journey))
    assert journey is not None
    assert response.headers["location"] == f"/journeys/{journey.id}"
    assert journey.trigger == {"type": "points_expiring", "within_days": 7}
    assert journey.steps == [
        {"id": "gift", "type": "coupon", "template_id": ids["template"]},
        {"id": "hi", "type": "send", "content_id": ids["coupon_content"]},
    ]
    assert (journey.goal, journey.channel_account_ids) == ({"type": "order"}, [ids["account"]])
    # and the detail names the trigger, its days and the template
    page = unescape(client.get(f"/journeys/{journey.id}").text)
    assert "触发: 积分即将到期 · 7 天内到期" in " ".join(page.split())
    assert re.search(r'<tr data-step="gift">.*?发券.*?<td class="step-summary">满199减20</td>', page, re.S)
    # and the edit page starts from the same definition
    data, _ = _editor(client.get(f"/journeys/{journey.id}/edit").text)
    assert data["definition"] == {
        "trigger": {"type": "points_expiring", "within_days": 7},
        "steps": journey.steps,
        "goal": {"type": "order"},
    }


def test_a_coupon_step_with_an_archived_template_or_a_trigger_without_days_is_refused(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)

    def post(trigger: dict[str, Any], template_id: int) -> Any:
        steps = [{"id": "gift", "type": "coupon", "template_id": template_id}]
        definition = json.dumps({"trigger": trigger, "steps": steps})
        return client.post("/journeys", data={"csrf_token": csrf, "name": "坏的", "definition": definition})

    # when the coupon step names the archived template, then the step shows the error
    archived = post({"type": "points_expiring", "within_days": 7}, ids["archived"])
    assert archived.status_code == 422
    assert '"error_path": "$.steps[0].template_id"' in archived.text
    # when the trigger has no days, then the trigger shows it
    no_days = post({"type": "points_expiring"}, ids["template"])
    assert no_days.status_code == 422
    assert '"error_path": "$.trigger.within_days"' in no_days.text
    # and nothing was saved
    assert _count(db, Journey) == 0


# --- broadcasts --------------------------------------------------------------------------------


class _FormValues(HTMLParser):
    """What a browser would post for a form as rendered: inputs, checked radios, selected options,
    textareas (the submit buttons left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button"):
            if a.get("type") not in ("radio", "checkbox") or "checked" in a:
                self.values[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self._select is not None and "selected" in a:
            self.values[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.values[self._textarea] += data


def _form_values(html: str) -> dict[str, str]:
    parser = _FormValues()
    parser.feed(html)
    return parser.values


def _wizard(ids: dict[str, int], csrf: str, **changes: str) -> dict[str, str]:
    form = {
        "name": "双11 领券",
        "segment_id": str(ids["segment"]),
        "account_0": str(ids["account"]),
        "variant_0_content_id": str(ids["coupon_content"]),
        "variant_0_weight": "50",
        "holdout_pct": "0",
        "brief_objective": "召回沉睡老客",
        "brief_hook": "满 199 减 20",
        "quiet_hours": "hold",
        "scheduled_at": "",
        "coupon_template_id": str(ids["template"]),
        "csrf_token": csrf,
    }
    return form | changes


def test_the_wizard_saves_the_coupon_template_in_the_brief_and_shows_it(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # the new form lists the active template only, with "不发券" chosen
    new = client.get("/broadcasts/new").text
    assert _form_values(new)["coupon_template_id"] == ""
    assert f'<option value="{ids["template"]}">满199减20</option>' in new
    assert "旧券" not in new
    # when a draft using {{ coupon_code }} is saved with the template
    response = client.post("/broadcasts", data=_wizard(ids, csrf))
    # then the brief carries the template, exactly
    assert response.status_code == 303, response.text
    broadcast = db.scalar(select(Broadcast))
    assert broadcast is not None
    assert response.headers["location"] == f"/broadcasts/{broadcast.id}"
    assert broadcast.brief == {
        "objective": "召回沉睡老客",
        "audience": "",
        "hook": "满 199 减 20",
        "mechanism": "",
        "path": "",
        "coupon_template_id": ids["template"],
    }
    assert broadcast.variants == [{"key": "A", "content_id": ids["coupon_content"], "weight": 50}]
    # and the detail names the template
    page = client.get(f"/broadcasts/{broadcast.id}").text
    assert f'data-brief="coupon_template_id" data-coupon-template="{ids["template"]}">满199减20</dd>' in page
    # and the edit form has it chosen
    assert _form_values(client.get(f"/broadcasts/{broadcast.id}/edit").text)["coupon_template_id"] == str(
        ids["template"]
    )


def test_the_wizard_refuses_a_coupon_code_without_a_template_and_an_archived_template(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when content using {{ coupon_code }} is sent without a template, then the content shows why
    no_template = client.post("/broadcasts", data=_wizard(ids, csrf, coupon_template_id=""))
    assert no_template.status_code == 422
    assert 'data-error="variants.0.content_id"' in no_template.text
    assert "coupon_code" in unescape(no_template.text)
    # when an archived template is posted, then the coupon field shows why, keeping the choice
    archived = client.post("/broadcasts", data=_wizard(ids, csrf, coupon_template_id=str(ids["archived"])))
    assert archived.status_code == 422
    assert 'data-error="coupon_template_id"' in archived.text
    assert _form_values(archived.text)["coupon_template_id"] == str(ids["archived"])
    # when the template id is not a number, then the same field shows it
    typo = client.post("/broadcasts", data=_wizard(ids, csrf, coupon_template_id="x1"))
    assert typo.status_code == 422 and 'data-error="coupon_template_id"' in typo.text
    # and nothing was saved
    assert _count(db, Broadcast) == 0


def test_editing_a_broadcast_made_through_the_api_keeps_its_coupon_template(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a draft created through the API with a coupon template
    ids = _seed(db, workspace, clock)
    token = make_token(db, clock=clock, workspace=workspace, scopes=sorted(str(s) for s in ROLE_SCOPES[Role.OPERATOR]))
    db.commit()
    body = {
        "name": "API 领券",
        "segment_id": ids["segment"],
        "channel_account_ids": [ids["account"]],
        "variants": [{"key": "A", "content_id": ids["coupon_content"], "weight": 100}],
        "brief": {"objective": "拉动复购"},
        "coupon_template_id": ids["template"],
    }
    created = client.post("/api/v1/broadcasts", json=body, headers=bearer(token))
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    assert created.json()["brief"]["coupon_template_id"] == ids["template"]
    # when an operator opens the wizard and saves it renamed, posting the form as rendered (its CSRF too)
    login(client, user_with_role(Role.OPERATOR).email)
    values = _form_values(client.get(f"/broadcasts/{broadcast_id}/edit").text)
    assert values["coupon_template_id"] == str(ids["template"])
    response = client.post(f"/broadcasts/{broadcast_id}/edit", data=values | {"name": "API 领券 改", "action": "save"})
    assert response.status_code == 303, response.text
    # then the template is still there, and the API reads it back
    db.expire_all()
    broadcast = db.get(Broadcast, broadcast_id)
    assert broadcast is not None
    assert broadcast.name == "API 领券 改"
    assert broadcast.brief == {
        "objective": "拉动复购",
        "audience": "",
        "hook": "",
        "mechanism": "",
        "path": "",
        "coupon_template_id": ids["template"],
    }
    read = client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=bearer(token))
    assert read.json()["brief"]["coupon_template_id"] == ids["template"]
    # when the operator then chooses "不发券" with content that does not need a code, it is removed
    plain = values | {"variant_0_content_id": str(ids["plain_content"]), "coupon_template_id": "", "action": "save"}
    assert client.post(f"/broadcasts/{broadcast_id}/edit", data=plain).status_code == 303
    db.expire_all()
    assert "coupon_template_id" not in broadcast.brief


def test_editing_keeps_an_archived_template_visible_and_refuses_to_save_it(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a draft with a template that was archived afterwards
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    assert client.post("/broadcasts", data=_wizard(ids, csrf)).status_code == 303
    broadcast = db.scalar(select(Broadcast))
    assert broadcast is not None
    coupon_template = db.get(CouponTemplate, ids["template"])
    assert coupon_template is not None
    coupon_template.status = CouponTemplateStatus.ARCHIVED
    db.commit()
    # when the wizard opens, then the template is still chosen, marked archived (not silently dropped)
    edit = client.get(f"/broadcasts/{broadcast.id}/edit").text
    values = _form_values(edit)
    assert values["coupon_template_id"] == str(ids["template"])
    assert "满199减20 (已归档)" in edit
    # when saved as is, then the coupon field says why and the draft is unchanged
    refused = client.post(f"/broadcasts/{broadcast.id}/edit", data=values | {"name": "改名", "action": "save"})
    assert refused.status_code == 422
    assert 'data-error="coupon_template_id"' in refused.text
    db.expire_all()
    assert (broadcast.name, broadcast.brief["coupon_template_id"]) == ("双11 领券", ids["template"])


def test_staff_cannot_save_a_broadcast_with_a_coupon_or_a_coupon_journey(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a staff member (no touch scopes)
    ids = _seed(db, workspace, clock)
    staff = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    csrf = login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    # when they post the wizard and the editor, then both are refused and nothing is written
    assert client.post("/broadcasts", data=_wizard(ids, csrf)).status_code == 403
    steps = [{"id": "gift", "type": "coupon", "template_id": ids["template"]}]
    definition = json.dumps({"trigger": {"type": "points_expiring", "within_days": 3}, "steps": steps})
    journey_form = {"csrf_token": csrf, "name": "偷偷", "definition": definition}
    assert client.post("/journeys", data=journey_form).status_code == 403
    assert (_count(db, Broadcast), _count(db, Journey)) == (0, 0)
