"""Experiments: creating, changing, starting and finishing them, and their results from exposures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.experiments import assignment, service
from siyu.experiments.errors import ExperimentNotFound, ExperimentStateConflict
from siyu.experiments.schemas import ExperimentInput, VariantInput
from siyu.experiments.stats import Status, sample_size
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import (
    AuditEntry,
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
    ExperimentVariant,
    OrderStatus,
    Role,
    Workspace,
)
from tests.experiments.factories import add_exposures
from tests.factories import actor_for, make_customer, make_experiment, make_order, make_workspace

HOOKS = [VariantInput("A", "免费小样", 50, content={"hook": "免费小样"}), VariantInput("B", "红包", 50)]


def _data(**overrides: Any) -> ExperimentInput:
    values: dict[str, Any] = {"name": "包裹卡钩子", "primary_metric": "add_rate", "variants": HOOKS}
    return ExperimentInput(**(values | overrides))


def _create(db: Session, ws: Workspace, clock: FrozenClock, **overrides: Any) -> Experiment:
    return service.create_experiment(db, actor=actor_for(ws, role=Role.OPERATOR), data=_data(**overrides), clock=clock)


def test_create_a_draft_with_its_plan_and_an_audit_entry(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    # when an operator creates a test of two hooks with a plan
    experiment = _create(db, ws, clock, baseline_rate=0.12, minimum_detectable_effect=0.2, hypothesis="红包更好")
    # then it is a draft, the first variant is the control, and the users per arm are computed
    assert (experiment.status, experiment.started_at, experiment.hypothesis) == (
        ExperimentStatus.DRAFT,
        None,
        "红包更好",
    )
    assert (
        experiment.planned_users_per_arm
        == 3122
        == sample_size(baseline_rate=0.12, minimum_detectable_effect=0.2).users_per_arm
    )
    variants = assignment.variants_of(db, experiment.id)
    assert [(v.key, v.name, v.weight, v.is_control, v.position, v.content) for v in variants] == [
        ("A", "免费小样", 50, True, 0, {"hook": "免费小样"}),
        ("B", "红包", 50, False, 1, {}),
    ]
    entry = db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "experiment")).one()
    assert (entry.action, entry.entity_id, entry.after["planned_users_per_arm"]) == ("create", str(experiment.id), 3122)
    assert [v["key"] for v in entry.after["variants"]] == ["A", "B"]


def test_a_marked_control_and_an_explicit_plan(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    variants = [
        VariantInput("A", "新文案", 34),
        VariantInput("B", "旧文案", 33, is_control=True),
        VariantInput("C", "短文案", 33),
    ]
    experiment = _create(db, ws, clock, variants=variants, planned_users_per_arm=5000, primary_metric="click_rate")
    assert [v.is_control for v in assignment.variants_of(db, experiment.id)] == [False, True, False]
    assert (experiment.planned_users_per_arm, experiment.primary_metric) == (5000, ExperimentMetric.CLICK_RATE)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"variants": [VariantInput("A", "a", 50), VariantInput("B", "b", 40)]},
            "variants",
            "must sum to 100 (they sum to 90)",
        ),
        ({"variants": [VariantInput("A", "a", 100)]}, "variants", "2 to 8 variants"),
        (
            {"variants": [VariantInput("A", "a", 50), VariantInput("B-1", "b", 50)]},
            "variants[1].key",
            "1-8 letters or digits",
        ),
        ({"variants": [VariantInput("A", "a", 50), VariantInput("TOOLONGKEY", "b", 50)]}, "variants[1].key", "1-8"),
        ({"variants": [VariantInput("A", "a", 50), VariantInput("a", "b", 50)]}, "variants[1].key", "used twice"),
        ({"variants": [VariantInput("A", "a", 0), VariantInput("B", "b", 100)]}, "variants[0].weight", "from 1 to 100"),
        ({"variants": [VariantInput("A", "", 50), VariantInput("B", "b", 50)]}, "variants[0].name", "1-100 characters"),
        (
            {"variants": [VariantInput("A", "a", 50, True), VariantInput("B", "b", 50, True)]},
            "variants[1].is_control",
            "exactly one",
        ),
        (
            {"variants": [VariantInput("A", "a", 50, content={"price": "9"}), VariantInput("B", "b", 50)]},
            "variants[0].price",
            "unknown content field",
        ),
        (
            {"variants": [VariantInput("A", "a", 50, content={"target_url": "ftp://x"}), VariantInput("B", "b", 50)]},
            "variants[0].target_url",
            "https://",
        ),
        ({"name": "  "}, "name", "1-100 characters"),
        ({"primary_metric": "revenue"}, "primary_metric", "unknown metric 'revenue'"),
        ({"conversion_window_days": 0}, "conversion_window_days", "from 1 to 90"),
        ({"baseline_rate": 0.12}, "minimum_detectable_effect", "give both"),
        ({"baseline_rate": 0.6, "minimum_detectable_effect": 1.0}, "minimum_detectable_effect", "not below 1"),
        ({"baseline_rate": 1.2, "minimum_detectable_effect": 0.1}, "baseline_rate", "between 0 and 1"),
        ({"alpha": 0.7}, "alpha", "between 0 and 0.5"),
        ({"power": 0}, "power", "between 0 and 1"),
        ({"planned_users_per_arm": 0}, "planned_users_per_arm", "from 1"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    db: Session, clock: FrozenClock, overrides: dict[str, Any], field: str, message: str
) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput) as raised:
        _create(db, ws, clock, **overrides)
    assert raised.value.details == {"field": field}
    assert message in raised.value.message
    assert db.scalar(select(func.count()).select_from(Experiment).where(Experiment.workspace_id == ws.id)) == 0


def test_names_are_unique_and_analysts_cannot_create(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    _create(db, ws, clock)
    with pytest.raises(ExperimentStateConflict) as raised:
        _create(db, ws, clock)
    assert raised.value.details == {"field": "name"}
    with pytest.raises(PermissionDenied):
        service.create_experiment(db, actor=actor_for(ws, role=Role.ANALYST), data=_data(name="另一个"), clock=clock)
    assert db.scalar(select(func.count()).select_from(Experiment).where(Experiment.workspace_id == ws.id)) == 1


def test_a_draft_changes_everything_and_the_plan_is_recomputed(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    operator = actor_for(ws, role=Role.OPERATOR)
    experiment = _create(db, ws, clock, baseline_rate=0.12, minimum_detectable_effect=0.2)
    # when the variants become three and the effect larger
    three = [VariantInput("A", "小样", 40), VariantInput("B", "红包", 30), VariantInput("C", "券", 30)]
    service.update_experiment(
        db,
        actor=operator,
        experiment_id=experiment.id,
        changes={"variants": three, "minimum_detectable_effect": 0.3, "name": "钩子三选一"},
        clock=clock,
    )
    assert [(v.key, v.weight) for v in assignment.variants_of(db, experiment.id)] == [("A", 40), ("B", 30), ("C", 30)]
    expected = sample_size(baseline_rate=0.12, minimum_detectable_effect=0.3, arms=3).users_per_arm
    assert (experiment.name, experiment.planned_users_per_arm) == ("钩子三选一", expected)
    update = db.scalars(select(AuditEntry).where(AuditEntry.action == "update")).one()
    assert (update.before["name"], update.after["name"], len(update.after["variants"])) == (
        "包裹卡钩子",
        "钩子三选一",
        3,
    )
    # a size given directly replaces the computed plan
    service.update_experiment(
        db, actor=operator, experiment_id=experiment.id, changes={"planned_users_per_arm": 800}, clock=clock
    )
    assert (experiment.planned_users_per_arm, experiment.baseline_rate, experiment.minimum_detectable_effect) == (
        800,
        None,
        None,
    )
    with pytest.raises(InvalidInput) as raised:
        service.update_experiment(
            db, actor=operator, experiment_id=experiment.id, changes={"colour": "red"}, clock=clock
        )
    assert raised.value.details == {"field": "colour"}


def test_start_and_finish_and_what_a_running_test_may_change(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    operator = actor_for(ws, role=Role.OPERATOR)
    experiment = _create(db, ws, clock)
    with pytest.raises(ExperimentStateConflict, match="only a running experiment can finish"):
        service.finish_experiment(db, actor=operator, experiment_id=experiment.id, clock=clock)
    # when it starts
    service.start_experiment(db, actor=operator, experiment_id=experiment.id, clock=clock)
    assert (experiment.status, experiment.started_at) == (ExperimentStatus.RUNNING, clock.now())
    with pytest.raises(ExperimentStateConflict, match="only a draft experiment can start"):
        service.start_experiment(db, actor=operator, experiment_id=experiment.id, clock=clock)
    # then its split is fixed but its name may change
    with pytest.raises(ExperimentStateConflict) as raised:
        service.update_experiment(
            db, actor=operator, experiment_id=experiment.id, changes={"variants": HOOKS[::-1]}, clock=clock
        )
    assert raised.value.details == {"field": "variants"}
    service.update_experiment(db, actor=operator, experiment_id=experiment.id, changes={"name": "新名字"}, clock=clock)
    assert experiment.name == "新名字"
    with pytest.raises(ExperimentStateConflict, match="only a draft can be deleted"):
        service.delete_experiment(db, actor=operator, experiment_id=experiment.id, clock=clock)
    clock.advance(timedelta(days=14))
    service.finish_experiment(db, actor=operator, experiment_id=experiment.id, clock=clock)
    assert (experiment.status, experiment.ended_at) == (ExperimentStatus.FINISHED, clock.now())
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.entity_type == "experiment").order_by(AuditEntry.id)
    )
    assert list(actions) == ["create", "start", "update", "finish"]


def test_delete_a_draft_and_not_found_across_workspaces(db: Session, clock: FrozenClock) -> None:
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    experiment = _create(db, ws, clock)
    with pytest.raises(ExperimentNotFound):
        service.get_experiment(db, actor=actor_for(other), experiment_id=experiment.id)
    with pytest.raises(ExperimentNotFound):
        service.start_experiment(db, actor=actor_for(other), experiment_id=experiment.id, clock=clock)
    service.delete_experiment(db, actor=actor_for(ws), experiment_id=experiment.id, clock=clock)
    assert db.get(Experiment, experiment.id) is None
    assert (
        db.scalar(
            select(func.count()).select_from(ExperimentVariant).where(ExperimentVariant.experiment_id == experiment.id)
        )
        == 0
    )
    assert db.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "experiment")).all() == [
        "create",
        "delete",
    ]


def test_add_rate_results_count_exposures_and_conversions(db: Session, clock: FrozenClock) -> None:
    # given a running test with 1000 exposures per variant, 120 and 150 of them added
    ws = make_workspace(db, clock=clock)
    experiment = make_experiment(db, workspace=ws, clock=clock, variants=[("A", 50), ("B", 50)])
    experiment.planned_users_per_arm = 3122
    add_exposures(db, experiment=experiment, key="A", users=1000, conversions=120, at=clock.now())
    add_exposures(db, experiment=experiment, key="B", users=1000, conversions=150, at=clock.now())
    # when the results are read
    results = service.results(db, actor=actor_for(ws, role=Role.ANALYST), experiment_id=experiment.id)
    # then the counts feed the statistics, and the plan is not reached yet
    assert [(a.key, a.users, a.conversions, a.is_control) for a in results.arms] == [
        ("A", 1000, 120, True),
        ("B", 1000, 150, False),
    ]
    assert results.total_users == 2000 and results.leader is not None and results.leader.key == "B"
    analysis = results.analysis
    assert analysis is not None
    comparison = analysis.comparisons[0]
    assert (comparison.arm, comparison.control, comparison.status) == ("B", "A", Status.COLLECTING)
    assert comparison.absolute.p_value == pytest.approx(0.04964038686536878, rel=1e-9)
    assert comparison.explanation["zh_CN"].startswith("B 的添加率高 25%，但数据还不足以下结论（已收集计划样本量的 32%")
    assert analysis.plan is not None and analysis.plan.progress == pytest.approx(1000 / 3122)
    assert analysis.sample_ratio.flagged is False and analysis.enough_data is False


def test_results_before_every_variant_has_a_user_have_no_analysis(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    experiment = make_experiment(db, workspace=ws, clock=clock)
    empty = service.results(db, actor=actor_for(ws), experiment_id=experiment.id)
    assert ([a.users for a in empty.arms], empty.analysis, empty.leader) == ([0, 0], None, None)
    add_exposures(db, experiment=experiment, key="A", users=3, conversions=1, at=clock.now())
    one_sided = service.results(db, actor=actor_for(ws), experiment_id=experiment.id)
    assert ([a.users for a in one_sided.arms], one_sided.analysis) == ([3, 0], None)
    assert one_sided.leader is not None and one_sided.leader.key == "A"


def test_a_skewed_split_is_flagged_as_sample_ratio_mismatch(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    experiment = make_experiment(db, workspace=ws, clock=clock, variants=[("A", 50), ("B", 50)])
    add_exposures(db, experiment=experiment, key="A", users=1000, conversions=100, at=clock.now())
    add_exposures(db, experiment=experiment, key="B", users=1200, conversions=120, at=clock.now())
    analysis = service.results(db, actor=actor_for(ws), experiment_id=experiment.id).analysis
    assert analysis is not None and analysis.sample_ratio.flagged is True
    assert analysis.sample_ratio.expected_users == [1100.0, 1100.0]


def test_assignment_exposures_and_conversions_feed_the_results(db: Session, clock: FrozenClock) -> None:
    # given visitors exposed through the shared assignment helpers, every third one converting
    ws = make_workspace(db, clock=clock)
    experiment = make_experiment(db, workspace=ws, clock=clock, variants=[("A", 50), ("B", 50)])
    for index in range(300):
        assignment.expose(db, experiment=experiment, visitor_id=f"visitor-{index}", at=clock.now())
        assignment.expose(db, experiment=experiment, visitor_id=f"visitor-{index}", at=clock.now())  # counted once
        if index % 3 == 0:
            assignment.convert(
                db, experiment_id=experiment.id, visitor_id=f"visitor-{index}", at=clock.now(), customer_id=None
            )
    results = service.results(db, actor=actor_for(ws), experiment_id=experiment.id)
    expected = {"A": [0, 0], "B": [0, 0]}
    for index in range(300):
        key = assignment.assign_variant(experiment.id, f"visitor-{index}", [("A", 50), ("B", 50)])
        expected[key][0] += 1
        expected[key][1] += index % 3 == 0
    assert {a.key: [a.users, a.conversions] for a in results.arms} == expected
    assert sum(a.users for a in results.arms) == 300 and sum(a.conversions for a in results.arms) == 100


def test_first_order_rate_counts_first_orders_paid_within_the_window(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    experiment = make_experiment(db, workspace=ws, clock=clock, metric=ExperimentMetric.FIRST_ORDER_RATE)
    experiment.conversion_window_days = 7
    t0 = clock.now()
    day = timedelta(days=1)

    def exposed(key: str, *orders: tuple[timedelta, OrderStatus]) -> None:
        customer = make_customer(db, actor=actor, clock=clock).customer
        add_exposures(db, experiment=experiment, key=key, users=1, at=t0, customer_id=customer.id)
        for offset, status in orders:
            order = make_order(
                db, customer=customer, paid_at=t0 + offset, refunded_fen=500 if status != OrderStatus.PAID else 0
            )
            order.status = status

    exposed("A", (2 * day, OrderStatus.PAID))  # counts
    exposed("A", (7 * day, OrderStatus.PARTIALLY_REFUNDED))  # counts: the window's last instant, partly refunded
    exposed("A", (7 * day + timedelta(seconds=1), OrderStatus.PAID))  # too late
    exposed("A", (-day, OrderStatus.PAID), (day, OrderStatus.PAID))  # not a first order: bought before
    exposed("B", (3 * day, OrderStatus.REFUNDED))  # fully refunded
    exposed("B", (3 * day, OrderStatus.REFUNDED), (4 * day, OrderStatus.PAID))  # the first order was refunded
    exposed("B", (0 * day, OrderStatus.PAID))  # counts: paid the moment of the exposure
    exposed("B")  # never bought
    add_exposures(db, experiment=experiment, key="B", users=2, at=t0)  # visitors never identified
    # an order of another workspace's customer with the same timing changes nothing
    other_ws = make_workspace(db, clock=clock)
    stranger = make_customer(db, actor=actor_for(other_ws), clock=clock).customer
    make_order(db, customer=stranger, paid_at=t0 + day)
    db.flush()
    results = service.results(db, actor=actor, experiment_id=experiment.id)
    assert [(a.key, a.users, a.conversions) for a in results.arms] == [("A", 4, 2), ("B", 6, 1)]
    assert results.analysis is not None and results.analysis.metric == "first_order_rate"


def test_exposures_of_unknown_variants_are_ignored(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    experiment = make_experiment(db, workspace=ws, clock=clock)
    add_exposures(db, experiment=experiment, key="A", users=5, conversions=1, at=clock.now())
    add_exposures(db, experiment=experiment, key="B", users=5, conversions=2, at=clock.now())
    add_exposures(db, experiment=experiment, key="Z", users=7, at=clock.now())
    results = service.results(db, actor=actor_for(ws), experiment_id=experiment.id)
    assert [(a.key, a.users) for a in results.arms] == [("A", 5), ("B", 5)]
    assert db.scalar(select(func.count()).select_from(ExperimentExposure)) >= 17
