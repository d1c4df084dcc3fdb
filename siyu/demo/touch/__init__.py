"""The demo brand's touch (触达) side: channels, content, a sent broadcast with results, SOPs, calendars.

Runs after the customers and segments exist, in transactions of its own, because the broadcast is
sent the way production sends one: submitted through the service, then planned and sent by the
dispatch sweep (`siyu.campaigns.broadcasts.tasks.dispatch`) with a clock set six days back, to
two sandbox accounts. The sandbox's simulated engagement then marks deliveries delivered and read
and clicks some per-recipient links through the public click path, and a few customers buy after
the message, so the results page has conversions and an uplift over the 10 % holdout.

Deterministic for a seed and `clock.now()` (but for the short links' random slugs).
"""

from siyu.demo.touch.builder import SANDBOX_SMS, SANDBOX_WECOM, build_touch

__all__ = ["SANDBOX_SMS", "SANDBOX_WECOM", "build_touch"]
