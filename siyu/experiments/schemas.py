"""Shapes of the experiments area: the service's inputs and results, and the API's request bodies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from siyu.experiments.stats import Analysis
from siyu.kit.schemas import Input
from siyu.models import Experiment, ExperimentVariant

# --- service shapes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantInput:
    key: str
    name: str
    weight: int
    """Percentage of visitors; the weights of an experiment sum to 100."""
    is_control: bool = False
    content: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentInput:
    name: str
    primary_metric: str
    variants: Sequence[VariantInput]
    hypothesis: str | None = None
    conversion_window_days: int = 7
    baseline_rate: float | None = None
    minimum_detectable_effect: float | None = None
    """Relative lift to detect (0.2 = +20 %)."""
    alpha: float = 0.05
    power: float = 0.8
    planned_users_per_arm: int | None = None
    """Only when no baseline/effect is given (a size planned elsewhere); otherwise computed."""


@dataclass(frozen=True)
class ArmCounts:
    key: str
    name: str
    weight: int
    is_control: bool
    users: int
    conversions: int


@dataclass(frozen=True)
class ExperimentResults:
    experiment: Experiment
    arms: list[ArmCounts]
    """Control first, then the other variants in their order."""
    analysis: Analysis | None
    """None until every variant has at least one user."""

    @property
    def total_users(self) -> int:
        return sum(a.users for a in self.arms)

    @property
    def leader(self) -> ArmCounts | None:
        """The variant with the highest observed rate (None before any user)."""
        seen = [a for a in self.arms if a.users]
        return max(seen, key=lambda a: a.conversions / a.users) if seen else None


# --- API bodies --------------------------------------------------------------------------------

Number = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(le=10**12)]


class VariantIn(Input):
    key: str = Field(max_length=20, examples=["B"], description="1-8 letters or digits.")
    name: str = Field(max_length=100, examples=["红包钩子"])
    weight: int = Field(examples=[50], description="Percentage of visitors; the weights sum to 100.")
    is_control: bool = Field(default=False, description="Exactly one control; the first variant when none is set.")
    content: dict[str, str | None] = Field(
        default_factory=dict, description="What differs: hook, welcome_text, target_url."
    )

    def to_input(self) -> VariantInput:
        return VariantInput(self.key, self.name, self.weight, self.is_control, self.content)


class ExperimentIn(Input):
    name: str = Field(max_length=100)
    hypothesis: str | None = Field(default=None, max_length=500)
    primary_metric: str = Field(examples=["add_rate"], description="add_rate, first_order_rate or click_rate.")
    conversion_window_days: int = 7
    variants: list[VariantIn] = Field(max_length=50)
    baseline_rate: Number | None = Field(default=None, examples=[0.12])
    minimum_detectable_effect: Number | None = Field(default=None, examples=[0.2], description="Relative lift.")
    alpha: Number = 0.05
    power: Number = 0.8
    planned_users_per_arm: int | None = Field(default=None, description="Only without baseline and effect.")


class ExperimentPatch(Input):
    """Only the fields sent change; variants, metric and plan only while a draft."""

    name: str | None = Field(default=None, max_length=100)
    hypothesis: str | None = Field(default=None, max_length=500)
    primary_metric: str | None = None
    conversion_window_days: int | None = None
    variants: list[VariantIn] | None = Field(default=None, max_length=50)
    baseline_rate: Number | None = None
    minimum_detectable_effect: Number | None = None
    alpha: Number | None = None
    power: Number | None = None
    planned_users_per_arm: int | None = None


class ArmIn(Input):
    name: str = Field(max_length=50, examples=["control"])
    users: Count = Field(examples=[1000])
    conversions: Count = Field(examples=[120])


class AnalyzeIn(Input):
    """Numbers gathered elsewhere: the first arm is the control."""

    arms: list[ArmIn] = Field(max_length=20)
    planned_users_per_arm: int | None = Field(default=None, le=10**12)
    weights: list[Number] | None = Field(default=None, max_length=20, description="Planned split (equal if absent).")
    alpha: Number = 0.05
    metric: str | None = Field(default=None, description="add_rate, first_order_rate or click_rate (for the wording).")


class SampleSizeIn(Input):
    baseline_rate: Number = Field(examples=[0.12])
    minimum_detectable_effect: Number = Field(examples=[0.2])
    relative: bool = Field(default=True, description="Effect relative to the baseline (0.2 = +20 %) or absolute.")
    power: Number = 0.8
    alpha: Number = 0.05
    arms: int = Field(default=2, le=1000)


class VariantRead(BaseModel):
    id: int
    key: str
    name: str
    weight: int
    is_control: bool
    position: int
    content: dict[str, Any]


class ExperimentRead(BaseModel):
    id: int
    name: str
    hypothesis: str | None
    status: str
    primary_metric: str
    conversion_window_days: int
    baseline_rate: float | None
    minimum_detectable_effect: float | None
    alpha: float
    power: float
    planned_users_per_arm: int | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    variants: list[VariantRead]


class ExperimentPage(BaseModel):
    items: list[ExperimentRead]
    next_cursor: str | None


def experiment_read(experiment: Experiment, variants: Sequence[ExperimentVariant]) -> ExperimentRead:
    return ExperimentRead(
        id=experiment.id,
        name=experiment.name,
        hypothesis=experiment.hypothesis,
        status=str(experiment.status),
        primary_metric=str(experiment.primary_metric),
        conversion_window_days=experiment.conversion_window_days,
        baseline_rate=experiment.baseline_rate,
        minimum_detectable_effect=experiment.minimum_detectable_effect,
        alpha=experiment.alpha,
        power=experiment.power,
        planned_users_per_arm=experiment.planned_users_per_arm,
        started_at=experiment.started_at,
        ended_at=experiment.ended_at,
        created_at=experiment.created_at,
        variants=[
            VariantRead(
                id=v.id,
                key=v.key,
                name=v.name,
                weight=v.weight,
                is_control=v.is_control,
                position=v.position,
                content=v.content,
            )
            for v in variants
        ],
    )
