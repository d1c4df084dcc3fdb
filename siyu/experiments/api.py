"""HTTP API of experiments: CRUD, start/finish, results, and the stateless calculators."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from siyu.auth.permissions import Scope
from siyu.experiments import repository, service, stats
from siyu.experiments.assignment import variants_of
from siyu.experiments.schemas import (
    AnalyzeIn,
    ExperimentIn,
    ExperimentInput,
    ExperimentPage,
    ExperimentPatch,
    ExperimentRead,
    ExperimentResults,
    SampleSizeIn,
    experiment_read,
)
from siyu.kit.errors import InvalidInput
from siyu.models import Experiment, ExperimentStatus
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["experiments"])
Reader = Annotated[Ctx, Depends(require(Scope.ACQUISITION_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ACQUISITION_WRITE))]


def _read(ctx: Ctx, experiment: Experiment) -> ExperimentRead:
    return experiment_read(experiment, variants_of(ctx.session, experiment.id))


def results_json(results: ExperimentResults) -> dict[str, Any]:
    """Counts per variant and every figure of the analysis (null until each variant has a user)."""
    return {
        "experiment_id": results.experiment.id,
        "status": str(results.experiment.status),
        "primary_metric": str(results.experiment.primary_metric),
        "total_users": results.total_users,
        "variants": [
            {
                "key": a.key,
                "name": a.name,
                "weight": a.weight,
                "is_control": a.is_control,
                "users": a.users,
                "conversions": a.conversions,
            }
            for a in results.arms
        ],
        "analysis": results.analysis.to_dict() if results.analysis else None,
    }


@router.get("/experiments", response_model=ExperimentPage)
def list_experiments(
    ctx: Reader,
    status: ExperimentStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ExperimentPage:
    page = repository.list_experiments(
        ctx.session, workspace_id=ctx.actor.workspace_id, status=status, cursor=cursor, limit=limit
    )
    return ExperimentPage(items=[_read(ctx, e) for e in page.items], next_cursor=page.next_cursor)


@router.post("/experiments", response_model=ExperimentRead, status_code=201)
def create_experiment(body: ExperimentIn, ctx: Writer) -> ExperimentRead:
    """A draft experiment. Variant weights are percentages summing to 100; the first variant is the
    control unless one is marked. With baseline_rate and minimum_detectable_effect the planned users
    per arm are computed."""
    values = body.model_dump(exclude={"variants"})
    data = ExperimentInput(**values, variants=[v.to_input() for v in body.variants])
    experiment = service.create_experiment(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    return _read(ctx, experiment)


@router.post("/experiments/analyze")
def analyze(body: AnalyzeIn, ctx: Reader) -> dict[str, Any]:
    """Every statistic for numbers gathered elsewhere (`users`/`conversions` per arm, control first)."""
    result = stats.analyze(
        [stats.Arm(a.name, a.users, a.conversions) for a in body.arms],
        alpha=body.alpha,
        planned_users_per_arm=body.planned_users_per_arm,
        weights=body.weights,
        metric=body.metric,
    )
    return result.to_dict()


@router.post("/experiments/sample-size")
def sample_size(body: SampleSizeIn, ctx: Reader) -> dict[str, Any]:
    """Users per arm to detect the effect with the given power (two-sided test)."""
    return stats.sample_size(
        baseline_rate=body.baseline_rate,
        minimum_detectable_effect=body.minimum_detectable_effect,
        relative=body.relative,
        power=body.power,
        alpha=body.alpha,
        arms=body.arms,
    ).to_dict()


@router.get("/experiments/{experiment_id}", response_model=ExperimentRead)
def get_experiment(experiment_id: IdPath, ctx: Reader) -> ExperimentRead:
    return _read(ctx, service.get_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id))


@router.patch("/experiments/{experiment_id}", response_model=ExperimentRead)
def update_experiment(experiment_id: IdPath, body: ExperimentPatch, ctx: Writer) -> ExperimentRead:
    changes = body.model_dump(exclude_unset=True, exclude={"variants"})
    for required in ("name", "primary_metric", "conversion_window_days", "alpha", "power"):
        if required in changes and changes[required] is None:
            raise InvalidInput(f"{required} cannot be empty", details={"field": required})
    if "variants" in body.model_fields_set:
        changes["variants"] = [v.to_input() for v in body.variants or []]
    experiment = service.update_experiment(
        ctx.session, actor=ctx.actor, experiment_id=experiment_id, changes=changes, clock=ctx.clock
    )
    return _read(ctx, experiment)


@router.delete("/experiments/{experiment_id}", status_code=204)
def delete_experiment(experiment_id: IdPath, ctx: Writer) -> Response:
    service.delete_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id, clock=ctx.clock)
    return Response(status_code=204)


@router.post("/experiments/{experiment_id}/start", response_model=ExperimentRead)
def start_experiment(experiment_id: IdPath, ctx: Writer) -> ExperimentRead:
    experiment = service.start_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id, clock=ctx.clock)
    return _read(ctx, experiment)


@router.post("/experiments/{experiment_id}/finish", response_model=ExperimentRead)
def finish_experiment(experiment_id: IdPath, ctx: Writer) -> ExperimentRead:
    experiment = service.finish_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id, clock=ctx.clock)
    return _read(ctx, experiment)


@router.get("/experiments/{experiment_id}/results")
def experiment_results(experiment_id: IdPath, ctx: Reader) -> dict[str, Any]:
    """Users (exposures) and conversions per variant, and the analysis over them."""
    return results_json(service.results(ctx.session, actor=ctx.actor, experiment_id=experiment_id))
