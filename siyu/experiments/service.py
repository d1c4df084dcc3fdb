"""Experiments: create and change them, start and finish them, and read their results.

Variant weights are whole percentages that must sum to 100 (50/50, 34/33/33): an operator reads
them as the share of visitors each variant gets, and a split that doesn't add up is refused.
Only a draft may change its variants, metric or plan; a running test keeps its split, or the
visitors already assigned would be reshuffled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.experiments import repository, stats
from siyu.experiments.assignment import variants_of
from siyu.experiments.errors import ExperimentStateConflict
from siyu.experiments.schemas import ArmCounts, ExperimentInput, ExperimentResults, VariantInput
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Experiment, ExperimentMetric, ExperimentStatus, ExperimentVariant

VARIANT_KEY = re.compile(r"^[A-Za-z0-9]{1,8}$")
"""Keys travel in WeCom `state` strings (≤30 characters with the live code), hence 1–8 letters/digits."""
MIN_VARIANTS, MAX_VARIANTS = 2, 8
MAX_WINDOW_DAYS = 90
CONTENT_LIMITS = {"hook": 200, "welcome_text": 1000, "target_url": 500}
"""What a variant may change, and how long each may be."""
DRAFT_ONLY = (
    "primary_metric",
    "conversion_window_days",
    "variants",
    "baseline_rate",
    "minimum_detectable_effect",
    "alpha",
    "power",
    "planned_users_per_arm",
)


# --- validation --------------------------------------------------------------------------------


def _invalid(message: str, field_name: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field_name})


def _whole(value: object, field_name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{field_name} must be a whole number from {low} to {high}", field_name)
    return value


def _rate(value: object, field_name: str, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"{field_name} must be a number", field_name)
    if not 0 < value < high:
        raise _invalid(f"{field_name} must be between 0 and {high:g} (exclusive)", field_name)
    return float(value)


def _content(raw: Mapping[str, Any], path: str) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in raw.items():
        if key not in CONTENT_LIMITS:
            raise _invalid(f"unknown content field {key!r} (allowed: {', '.join(CONTENT_LIMITS)})", f"{path}.{key}")
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > CONTENT_LIMITS[key]:
            raise _invalid(f"{key} must be text of at most {CONTENT_LIMITS[key]} characters", f"{path}.{key}")
        if key == "target_url" and not value.startswith(("https://", "http://")):
            raise _invalid("target_url must start with https:// or http://", f"{path}.{key}")
        clean[key] = value.strip()
    return clean


def validate_variants(variants: Sequence[VariantInput]) -> list[VariantInput]:
    """Keys, names, percentage weights summing to 100 and exactly one control (the first by default)."""
    if not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise _invalid(f"an experiment has {MIN_VARIANTS} to {MAX_VARIANTS} variants", "variants")
    keys: set[str] = set()
    clean = []
    for index, variant in enumerate(variants):
        path = f"variants[{index}]"
        key = (variant.key or "").strip()
        if not VARIANT_KEY.match(key):
            raise _invalid(f"variant key {key!r} must be 1-8 letters or digits", f"{path}.key")
        if key.lower() in keys:
            raise _invalid(f"variant key {key!r} is used twice", f"{path}.key")
        keys.add(key.lower())
        name = (variant.name or "").strip()
        if not 1 <= len(name) <= 100:
            raise _invalid("variant name must be 1-100 characters", f"{path}.name")
        weight = _whole(variant.weight, f"{path}.weight", 1, 100)
        clean.append(replace(variant, key=key, name=name, weight=weight, content=_content(variant.content, path)))
    total = sum(v.weight for v in clean)
    if total != 100:
        raise _invalid(f"variant weights are percentages and must sum to 100 (they sum to {total})", "variants")
    controls = [i for i, v in enumerate(clean) if v.is_control]
    if len(controls) > 1:
        raise _invalid("exactly one variant is the control", f"variants[{controls[1]}].is_control")
    control = controls[0] if controls else 0
    return [replace(v, is_control=i == control) for i, v in enumerate(clean)]


def validate(data: ExperimentInput, *, check_variants: bool = True) -> tuple[ExperimentInput, list[VariantInput]]:
    """The input cleaned, with the planned users per arm computed; InvalidInput names the field.

    `check_variants=False` keeps stored variants as they are when a change leaves them alone.
    """
    name = (data.name or "").strip()
    if not 1 <= len(name) <= 100:
        raise _invalid("name must be 1-100 characters", "name")
    hypothesis = (data.hypothesis or "").strip() or None
    if hypothesis is not None and len(hypothesis) > 500:
        raise _invalid("hypothesis must be at most 500 characters", "hypothesis")
    if data.primary_metric not in set(ExperimentMetric):
        allowed = ", ".join(ExperimentMetric)
        raise _invalid(f"unknown metric {data.primary_metric!r} (allowed: {allowed})", "primary_metric")
    window = _whole(data.conversion_window_days, "conversion_window_days", 1, MAX_WINDOW_DAYS)
    variants = validate_variants(data.variants) if check_variants else list(data.variants)
    alpha, power = _rate(data.alpha, "alpha", 0.5), _rate(data.power, "power")
    baseline, effect, planned = data.baseline_rate, data.minimum_detectable_effect, data.planned_users_per_arm
    if (baseline is None) != (effect is None):
        missing = "minimum_detectable_effect" if effect is None else "baseline_rate"
        raise _invalid("give both baseline_rate and minimum_detectable_effect to plan the sample size", missing)
    if baseline is not None and effect is not None:
        if planned is not None:
            raise _invalid("planned_users_per_arm is computed from the baseline and effect", "planned_users_per_arm")
        plan = stats.sample_size(
            baseline_rate=_rate(baseline, "baseline_rate"),
            minimum_detectable_effect=_rate(effect, "minimum_detectable_effect", math.inf),
            power=power,
            alpha=alpha,
            arms=len(variants),
        )
        planned = plan.users_per_arm
    elif planned is not None:
        planned = _whole(planned, "planned_users_per_arm", 1, 10**9)
    cleaned = replace(
        data,
        name=name,
        hypothesis=hypothesis,
        conversion_window_days=window,
        variants=variants,
        alpha=alpha,
        power=power,
        planned_users_per_arm=planned,
    )
    return cleaned, variants


# --- changes -----------------------------------------------------------------------------------


def snapshot(session: Session, experiment: Experiment) -> dict[str, Any]:
    """The experiment as the audit log and the API show it."""
    return {
        "name": experiment.name,
        "hypothesis": experiment.hypothesis,
        "status": str(experiment.status),
        "primary_metric": str(experiment.primary_metric),
        "conversion_window_days": experiment.conversion_window_days,
        "baseline_rate": experiment.baseline_rate,
        "minimum_detectable_effect": experiment.minimum_detectable_effect,
        "alpha": experiment.alpha,
        "power": experiment.power,
        "planned_users_per_arm": experiment.planned_users_per_arm,
        "variants": [
            {"key": v.key, "name": v.name, "weight": v.weight, "is_control": v.is_control, "content": v.content}
            for v in variants_of(session, experiment.id)
        ],
    }


def _apply(
    session: Session, experiment: Experiment, data: ExperimentInput, variants: list[VariantInput] | None
) -> None:
    """Write the validated input; variants are replaced only when given."""
    experiment.name = data.name
    experiment.hypothesis = data.hypothesis
    experiment.primary_metric = ExperimentMetric(data.primary_metric)
    experiment.conversion_window_days = data.conversion_window_days
    experiment.baseline_rate = data.baseline_rate
    experiment.minimum_detectable_effect = data.minimum_detectable_effect
    experiment.alpha = data.alpha
    experiment.power = data.power
    experiment.planned_users_per_arm = data.planned_users_per_arm
    if variants is None:
        session.flush()
        return
    session.execute(delete(ExperimentVariant).where(ExperimentVariant.experiment_id == experiment.id))
    for position, v in enumerate(variants):
        session.add(
            ExperimentVariant(
                workspace_id=experiment.workspace_id,
                experiment_id=experiment.id,
                key=v.key,
                name=v.name,
                weight=v.weight,
                is_control=v.is_control,
                position=position,
                content=dict(v.content),
            )
        )
    session.flush()


def create_experiment(session: Session, *, actor: Actor, data: ExperimentInput, clock: Clock) -> Experiment:
    """A draft experiment with its variants (the plan computed when baseline and effect are given)."""
    actor.require(Scope.ACQUISITION_WRITE)
    data, variants = validate(data)
    if repository.name_taken(session, workspace_id=actor.workspace_id, name=data.name):
        raise ExperimentStateConflict(f"an experiment named {data.name!r} exists", details={"field": "name"})
    experiment = Experiment(
        workspace_id=actor.workspace_id,
        name=data.name,
        primary_metric=ExperimentMetric(data.primary_metric),
        status=ExperimentStatus.DRAFT,
        created_at=clock.now(),
    )
    session.add(experiment)
    session.flush()
    _apply(session, experiment, data, variants)
    after = snapshot(session, experiment)
    record(session, actor, action="create", entity_type="experiment", entity_id=experiment.id, after=after, clock=clock)
    return experiment


def _as_input(session: Session, experiment: Experiment) -> ExperimentInput:
    return ExperimentInput(
        name=experiment.name,
        primary_metric=str(experiment.primary_metric),
        variants=[
            VariantInput(v.key, v.name, v.weight, v.is_control, v.content) for v in variants_of(session, experiment.id)
        ],
        hypothesis=experiment.hypothesis,
        conversion_window_days=experiment.conversion_window_days,
        baseline_rate=experiment.baseline_rate,
        minimum_detectable_effect=experiment.minimum_detectable_effect,
        alpha=experiment.alpha,
        power=experiment.power,
        planned_users_per_arm=None if experiment.baseline_rate is not None else experiment.planned_users_per_arm,
    )


def _variant_input(value: VariantInput | Mapping[str, Any]) -> VariantInput:
    if isinstance(value, VariantInput):
        return value
    return VariantInput(
        key=value.get("key", ""),
        name=value.get("name", ""),
        weight=value.get("weight", 0),
        is_control=bool(value.get("is_control", False)),
        content=value.get("content") or {},
    )


def update_experiment(
    session: Session, *, actor: Actor, experiment_id: int, changes: Mapping[str, Any], clock: Clock
) -> Experiment:
    """Change the fields in `changes` (names of ExperimentInput). Name and hypothesis may change at
    any time; the rest only while the experiment is a draft."""
    actor.require(Scope.ACQUISITION_WRITE)
    experiment = repository.get(session, workspace_id=actor.workspace_id, experiment_id=experiment_id, for_update=True)
    unknown = set(changes) - {"name", "hypothesis", *DRAFT_ONLY}
    if unknown:
        raise _invalid(f"unknown field {sorted(unknown)[0]!r}", sorted(unknown)[0])
    if experiment.status != ExperimentStatus.DRAFT and (locked := [f for f in DRAFT_ONLY if f in changes]):
        raise ExperimentStateConflict(
            f"{locked[0]} can only change while the experiment is a draft (it is {experiment.status})",
            details={"field": locked[0]},
        )
    before = snapshot(session, experiment)
    current = _as_input(session, experiment)
    planning = {"baseline_rate", "minimum_detectable_effect"} & set(changes)
    if planning and "planned_users_per_arm" not in changes:
        current = replace(current, planned_users_per_arm=None)  # recomputed from the new plan
    if "planned_users_per_arm" in changes and not planning:
        current = replace(current, baseline_rate=None, minimum_detectable_effect=None)  # a size given directly
    values = dict(changes)
    if "variants" in values:
        values["variants"] = [_variant_input(v) for v in values["variants"] or []]
    data, variants = validate(replace(current, **values), check_variants="variants" in changes)
    if repository.name_taken(session, workspace_id=actor.workspace_id, name=data.name, except_id=experiment.id):
        raise ExperimentStateConflict(f"an experiment named {data.name!r} exists", details={"field": "name"})
    if experiment.status == ExperimentStatus.DRAFT:
        _apply(session, experiment, data, variants if "variants" in changes else None)
    else:
        experiment.name, experiment.hypothesis = data.name, data.hypothesis
        session.flush()
    after = snapshot(session, experiment)
    if after != before:
        record(
            session,
            actor,
            action="update",
            entity_type="experiment",
            entity_id=experiment.id,
            before=before,
            after=after,
            clock=clock,
        )
    return experiment


def _transition(
    session: Session, actor: Actor, experiment_id: int, clock: Clock, *, source: ExperimentStatus, to: ExperimentStatus
) -> Experiment:
    actor.require(Scope.ACQUISITION_WRITE)
    experiment = repository.get(session, workspace_id=actor.workspace_id, experiment_id=experiment_id, for_update=True)
    if experiment.status != source:
        verb = "start" if to == ExperimentStatus.RUNNING else "finish"
        raise ExperimentStateConflict(
            f"only a {source} experiment can {verb} (this one is {experiment.status})", details={"field": "status"}
        )
    experiment.status = to
    if to == ExperimentStatus.RUNNING:
        experiment.started_at = clock.now()
    else:
        experiment.ended_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="start" if to == ExperimentStatus.RUNNING else "finish",
        entity_type="experiment",
        entity_id=experiment.id,
        before={"status": str(source)},
        after={"status": str(to)},
        clock=clock,
    )
    return experiment


def start_experiment(session: Session, *, actor: Actor, experiment_id: int, clock: Clock) -> Experiment:
    """Draft → running: from now on visitors are assigned and exposures recorded."""
    return _transition(session, actor, experiment_id, clock, source=ExperimentStatus.DRAFT, to=ExperimentStatus.RUNNING)


def finish_experiment(session: Session, *, actor: Actor, experiment_id: int, clock: Clock) -> Experiment:
    """Running → finished: visitors see the default content again; results stay."""
    return _transition(
        session, actor, experiment_id, clock, source=ExperimentStatus.RUNNING, to=ExperimentStatus.FINISHED
    )


def delete_experiment(session: Session, *, actor: Actor, experiment_id: int, clock: Clock) -> None:
    """Delete a draft (a test that ran keeps its results)."""
    actor.require(Scope.ACQUISITION_WRITE)
    experiment = repository.get(session, workspace_id=actor.workspace_id, experiment_id=experiment_id, for_update=True)
    if experiment.status != ExperimentStatus.DRAFT:
        raise ExperimentStateConflict(
            f"only a draft can be deleted (this one is {experiment.status})", details={"field": "status"}
        )
    before = snapshot(session, experiment)
    session.delete(experiment)
    session.flush()
    record(
        session, actor, action="delete", entity_type="experiment", entity_id=experiment_id, before=before, clock=clock
    )


# --- reading -----------------------------------------------------------------------------------


def get_experiment(session: Session, *, actor: Actor, experiment_id: int) -> Experiment:
    actor.require(Scope.ACQUISITION_READ)
    return repository.get(session, workspace_id=actor.workspace_id, experiment_id=experiment_id)


def results(session: Session, *, actor: Actor, experiment_id: int) -> ExperimentResults:
    """Users and conversions per variant from the exposures, and the statistics over them."""
    actor.require(Scope.ACQUISITION_READ)
    experiment = repository.get(session, workspace_id=actor.workspace_id, experiment_id=experiment_id)
    return results_of(session, experiment)


def results_of(session: Session, experiment: Experiment) -> ExperimentResults:
    """`results` for an experiment already loaded (the list page summarises each row)."""
    counts = repository.counts_by_variant(session, experiment)
    variants = sorted(variants_of(session, experiment.id), key=lambda v: not v.is_control)  # stable: control first
    arms = [
        ArmCounts(
            v.key,
            v.name,
            v.weight,
            v.is_control,
            counts[v.key].users if v.key in counts else 0,
            counts[v.key].conversions if v.key in counts else 0,
        )
        for v in variants
    ]
    analysis = None
    if len(arms) >= 2 and all(a.users for a in arms):
        analysis = stats.analyze(
            [stats.Arm(a.key, a.users, a.conversions) for a in arms],
            alpha=experiment.alpha,
            planned_users_per_arm=experiment.planned_users_per_arm,
            weights=[a.weight for a in arms],
            metric=str(experiment.primary_metric),
        )
    return ExperimentResults(experiment, arms, analysis)
