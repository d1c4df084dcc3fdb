"""Console pages of experiments: the list, the new/edit form with the sample-size calculator, and
the result page with the statistics explained in the console's language."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.experiments import repository, service, stats
from siyu.experiments.assignment import variants_of
from siyu.experiments.schemas import ExperimentInput, ExperimentResults, VariantInput
from siyu.kit.errors import DomainError, InvalidInput
from siyu.models import Experiment, ExperimentMetric, ExperimentStatus
from siyu.web.deps import ConsoleCtx, Ctx, IdPath
from siyu.web.pages import error_text, form_error, redirect
from siyu.web.templating import flash, render, request_locale, translator

router = APIRouter(include_in_schema=False)
FORM = "experiments/form.html"
VARIANT_ROWS = 4
DEFAULT_VARIANTS = [{"key": "A", "name": "", "weight": "50"}, {"key": "B", "name": "", "weight": "50"}]
PLAN_DEFAULTS = {"baseline": "", "mde": "", "power": "80", "alpha": "5"}


def pct(value: float | None, digits: int = 2) -> str:
    """0.1234 → "12.34%"."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def signed_pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:+.{digits}f}%"


def p_text(value: float | None) -> str:
    """Four decimals below 0.1 (0.0496, not a borderline-looking 0.050), three above."""
    if value is None:
        return "—"
    if value < 0.001:
        return "<0.001"
    return f"{value:.4f}" if value < 0.1 else f"{value:.3f}"


def _helpers() -> dict[str, Any]:
    return {"pct": pct, "signed_pct": signed_pct, "p_text": p_text}


# --- list --------------------------------------------------------------------------------------


@router.get("/experiments")
def experiments_page(request: Request, ctx: ConsoleCtx, cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    page = repository.list_experiments(ctx.session, workspace_id=ctx.actor.workspace_id, cursor=cursor, limit=50)
    rows = [service.results_of(ctx.session, e) for e in page.items]
    next_url = f"/experiments?cursor={page.next_cursor}" if page.next_cursor else None
    return render(request, "experiments/list.html", {"rows": rows, "next_url": next_url} | _helpers())


# --- the sample-size calculator ----------------------------------------------------------------


def _percent_or(text: str | None, field: str, default: float) -> float:
    value = _percent(text, field)
    return default if value is None else value


def _percent(text: str | None, field: str) -> float | None:
    """A percentage typed in the form ("12" or "12.5") as a fraction; None when left empty."""
    text = (text or "").strip().removesuffix("%").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{field} must be a number", details={"field": field}) from None
    if not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number", details={"field": field})
    return value / 100


def plan_context(request: Request, *, baseline: str, mde: str, power: str, alpha: str, arms: int) -> dict[str, Any]:
    """The calculator's figure for the form's planning fields (percentages as typed)."""
    context: dict[str, Any] = {"plan": None, "plan_error": None}
    try:
        base, effect = _percent(baseline, "baseline_rate"), _percent(mde, "minimum_detectable_effect")
        if base is not None and effect is not None:
            context["plan"] = stats.sample_size(
                baseline_rate=base,
                minimum_detectable_effect=effect,
                power=_percent_or(power, "power", 0.8),
                alpha=_percent_or(alpha, "alpha", 0.05),
                arms=max(2, arms),
            )
    except DomainError as exc:
        context["plan_error"] = error_text(request, exc)
    return context


@router.get("/experiments/sample-size")
def sample_size_fragment(
    request: Request,
    ctx: ConsoleCtx,
    baseline: str = "",
    mde: str = "",
    power: str = "80",
    alpha: str = "5",
    variant_key: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006 - FastAPI query list
) -> Response:
    """The users-per-arm figure for the form's planning fields (HTMX swaps it in as they change)."""
    ctx.actor.require(Scope.ACQUISITION_READ)
    arms = len([k for k in variant_key if k.strip()])
    context = plan_context(request, baseline=baseline, mde=mde, power=power, alpha=alpha, arms=arms)
    return render(request, "experiments/_sample_size.html", context | _helpers())


# --- create and edit ---------------------------------------------------------------------------


def _form_values(experiment: Experiment | None, variants: list[dict[str, str]] | None = None) -> dict[str, Any]:
    if experiment is None:
        return (
            {"name": "", "hypothesis": "", "metric": "add_rate", "window": "7", "control": "0"}
            | PLAN_DEFAULTS
            | {"variants": variants or DEFAULT_VARIANTS}
        )
    return {
        "name": experiment.name,
        "hypothesis": experiment.hypothesis or "",
        "metric": str(experiment.primary_metric),
        "window": str(experiment.conversion_window_days),
        "baseline": f"{experiment.baseline_rate * 100:g}" if experiment.baseline_rate is not None else "",
        "mde": f"{experiment.minimum_detectable_effect * 100:g}"
        if experiment.minimum_detectable_effect is not None
        else "",
        "power": f"{experiment.power * 100:g}",
        "alpha": f"{experiment.alpha * 100:g}",
        "control": "0",
        "variants": variants or [],
    }


def _form_context(request: Request, values: dict[str, Any], experiment: Experiment | None = None) -> dict[str, Any]:
    rows = list(values["variants"]) + [{"key": "", "name": "", "weight": ""}] * VARIANT_ROWS
    arms = len([r for r in values["variants"] if str(r.get("key", "")).strip()])
    plan_fields = {k: str(values.get(k, "")) for k in ("baseline", "mde", "power", "alpha")}
    return (
        {
            "values": values,
            "variant_rows": rows[: max(VARIANT_ROWS, len(values["variants"]))],
            "metrics": list(ExperimentMetric),
            "experiment": experiment,
            "errors": {},
        }
        | plan_context(request, **plan_fields, arms=arms)
        | _helpers()
    )


class ExperimentForm(BaseModel):
    """The new/edit form as posted: percentages as typed, one list entry per variant row."""

    name: str = ""
    hypothesis: str = ""
    metric: str = ""
    window: str = "7"
    baseline: str = ""
    mde: str = ""
    power: str = "80"
    alpha: str = "5"
    control: str = "0"
    variant_key: list[str] = Field(default_factory=list, max_length=20)
    variant_name: list[str] = Field(default_factory=list, max_length=20)
    variant_weight: list[str] = Field(default_factory=list, max_length=20)
    variant_hook: list[str] = Field(default_factory=list, max_length=20)

    def rows(self) -> list[dict[str, str]]:
        def at(values: list[str], index: int) -> str:
            return values[index] if index < len(values) else ""

        return [
            {
                "key": key,
                "name": at(self.variant_name, i),
                "weight": at(self.variant_weight, i),
                "hook": at(self.variant_hook, i),
            }
            for i, key in enumerate(self.variant_key)
        ]

    def values(self) -> dict[str, Any]:
        """What the form shows again after an error."""
        return self.model_dump(exclude={"variant_key", "variant_name", "variant_weight", "variant_hook"}) | {
            "variants": self.rows()
        }

    def to_input(self) -> ExperimentInput:
        variants = []
        for index, row in enumerate(self.rows()):
            if not any(row[f].strip() for f in ("key", "name", "weight")):
                continue  # an empty row of the form
            weight = row["weight"].strip()
            if not (weight.isascii() and weight.isdigit() and len(weight) < 10):
                message = f"weight of variant {row['key']!r} must be a whole number"
                raise InvalidInput(message, details={"field": f"variants[{index}].weight"})
            variants.append(
                VariantInput(
                    key=row["key"],
                    name=row["name"].strip() or row["key"].strip(),
                    weight=int(weight),
                    is_control=self.control == str(index),
                    content={"hook": row["hook"]} if row["hook"].strip() else {},
                )
            )
        if not (self.window.strip().isascii() and self.window.strip().isdigit() and len(self.window.strip()) < 10):
            raise InvalidInput("conversion window must be a whole number of days", details={"field": "window"})
        return ExperimentInput(
            name=self.name,
            hypothesis=self.hypothesis,
            primary_metric=self.metric,
            variants=variants,
            conversion_window_days=int(self.window),
            baseline_rate=_percent(self.baseline, "baseline_rate"),
            minimum_detectable_effect=_percent(self.mde, "minimum_detectable_effect"),
            power=_percent_or(self.power, "power", 0.8),
            alpha=_percent_or(self.alpha, "alpha", 0.05),
        )


FormData = Annotated[ExperimentForm, Form()]
DRAFT_FIELDS = ("name", "hypothesis", "primary_metric", "conversion_window_days", "variants")
PLAN_FIELDS = ("baseline_rate", "minimum_detectable_effect", "alpha", "power")


@router.get("/experiments/new")
def new_experiment_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    return render(request, FORM, _form_context(request, _form_values(None)))


@router.post("/experiments")
def create_experiment(request: Request, ctx: ConsoleCtx, form: FormData) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    try:
        data = form.to_input()
        experiment = service.create_experiment(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        return form_error(request, ctx, exc, FORM, lambda: _form_context(request, form.values()))
    _ = translator(request)
    flash(request, _("实验已创建"))
    return redirect(f"/experiments/{experiment.id}")


def _variant_rows(ctx: Ctx, experiment: Experiment) -> tuple[list[dict[str, str]], str]:
    variants = variants_of(ctx.session, experiment.id)
    rows = [
        {"key": v.key, "name": v.name, "weight": str(v.weight), "hook": str(v.content.get("hook") or "")}
        for v in variants
    ]
    control = next((str(i) for i, v in enumerate(variants) if v.is_control), "0")
    return rows, control


@router.get("/experiments/{experiment_id}/edit")
def edit_experiment_page(request: Request, ctx: ConsoleCtx, experiment_id: IdPath) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    experiment = service.get_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id)
    rows, control = _variant_rows(ctx, experiment)
    values = _form_values(experiment, rows) | {"control": control}
    return render(request, FORM, _form_context(request, values, experiment))


@router.post("/experiments/{experiment_id}/edit")
def update_experiment(request: Request, ctx: ConsoleCtx, experiment_id: IdPath, form: FormData) -> Response:
    """A draft changes everything; a running or finished test only its name and hypothesis."""
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    experiment = service.get_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id)
    try:
        if experiment.status == ExperimentStatus.DRAFT:
            data = form.to_input()
            changes: dict[str, Any] = {f: getattr(data, f) for f in (*DRAFT_FIELDS, *PLAN_FIELDS)}
        else:
            changes = {"name": form.name, "hypothesis": form.hypothesis}
        service.update_experiment(
            ctx.session, actor=ctx.actor, experiment_id=experiment_id, changes=changes, clock=ctx.clock
        )
    except DomainError as exc:
        return form_error(
            request, ctx, exc, FORM, lambda: _form_context(request, form.values(), _reload(ctx, experiment_id))
        )
    _ = translator(request)
    flash(request, _("实验已保存"))
    return redirect(f"/experiments/{experiment_id}")


def _reload(ctx: Ctx, experiment_id: int) -> Experiment:
    return service.get_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id)


# --- the result page ---------------------------------------------------------------------------


def chart_data(results: ExperimentResults) -> dict[str, Any]:
    """Conversion rate per variant with its confidence interval, in percent (for ECharts)."""
    if results.analysis is None:
        return {"arms": [a.key for a in results.arms], "rates": [], "lows": [], "highs": []}
    arms = results.analysis.arms
    return {
        "arms": [a.name for a in arms],
        "rates": [round(a.rate * 100, 4) for a in arms],
        "lows": [round(a.rate_ci_low * 100, 4) for a in arms],
        "highs": [round(a.rate_ci_high * 100, 4) for a in arms],
    }


@router.get("/experiments/{experiment_id}")
def experiment_page(request: Request, ctx: ConsoleCtx, experiment_id: IdPath) -> Response:
    results = service.results(ctx.session, actor=ctx.actor, experiment_id=experiment_id)
    analysis = results.analysis
    comparisons = {c.arm: c for c in analysis.comparisons} if analysis else {}
    arm_stats = {a.name: a for a in analysis.arms} if analysis else {}
    planned = results.experiment.planned_users_per_arm
    smallest = min((a.users for a in results.arms), default=0)
    progress = min(100, math.floor(smallest * 100 / planned)) if planned else None
    context = {
        "experiment": results.experiment,
        "results": results,
        "analysis": analysis,
        "comparisons": comparisons,
        "arm_stats": arm_stats,
        "progress": progress,
        "lang": "en" if request_locale(request) == "en" else "zh_CN",
        "chart": chart_data(results),
        "level": f"{(1 - results.experiment.alpha) * 100:g}%",
        "content": {v.key: v.content for v in variants_of(ctx.session, experiment_id)},
    }
    return render(request, "experiments/detail.html", context | _helpers())


@router.post("/experiments/{experiment_id}/start")
def start_experiment(request: Request, ctx: ConsoleCtx, experiment_id: IdPath) -> Response:
    service.start_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("实验已开始，访客将按权重分流"))
    return redirect(f"/experiments/{experiment_id}")


@router.post("/experiments/{experiment_id}/finish")
def finish_experiment(request: Request, ctx: ConsoleCtx, experiment_id: IdPath) -> Response:
    service.finish_experiment(ctx.session, actor=ctx.actor, experiment_id=experiment_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("实验已结束"))
    return redirect(f"/experiments/{experiment_id}")
