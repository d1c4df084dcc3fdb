"""Results of touch: what each broadcast and journey step did, and what it was worth against a holdout.

- `broadcast_results`: planned/sent/delivered/read/failed/clicked/unsubscribed, suppressions by
  reason, per-variant numbers, goal conversions and GMV per arm, the uplift over the holdout with a
  95 % confidence interval, and staff completion for WeCom sends.
- `journey_step_results`: the same delivery numbers per step of a journey, with each step's runs.
- `simulate_engagement`: the sandbox's stand-in for provider callbacks and real clicks (demos).

Everything is counted with grouped SQL over the delivery rows, never customer by customer in
Python, so a result page over a million deliveries is a handful of index scans. See
docs/touch-results.md for the definitions.
"""

from siyu.campaigns.results.broadcast import BroadcastResults, StaffCompletion, VariantResults, broadcast_results
from siyu.campaigns.results.engagement import simulate_engagement
from siyu.campaigns.results.journey import StepResults, journey_step_results
from siyu.campaigns.results.stats import Arm, Uplift, uplift

__all__ = [
    "Arm",
    "BroadcastResults",
    "StaffCompletion",
    "StepResults",
    "Uplift",
    "VariantResults",
    "broadcast_results",
    "journey_step_results",
    "simulate_engagement",
    "uplift",
]
