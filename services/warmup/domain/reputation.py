"""The IP's reputation score, 0..100, over a rolling window of its send outcomes.

    n     = sent (every outcome but dropped; a drop never reached a mailbox provider)
    raw   = 100 * accepted / n                 delivery share (complained mail was accepted)
          - 500 * bounce_rate                  bounced / n: 5% (Mailgun's limit) costs 25
          - 10_000 * complaint_rate            complained / accepted: 0.3% (Gmail's limit) costs 30
    raw   clamped to 0..100
    score = round_half_up((raw * n + 50 * 100) / (n + 100))

The last line weighs the evidence: it pulls the score toward a neutral 50 as if 100 extra
sends had scored 50, so an IP with no sends scores 50, one clean send does not score 100,
and a thousand clean sends score 95.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

from services.warmup.domain.event_time import as_utc
from services.warmup.domain.rules import WarmupRules
from services.warmup.domain.send_counts import OutcomeCounts

NEUTRAL = 50
PRIOR_SENDS = 100
BOUNCE_WEIGHT = 500
COMPLAINT_WEIGHT = 10_000


def reputation_score(counts: OutcomeCounts) -> int:
    """Score 0..100 for the outcomes in the window (see the module docstring)."""
    n = counts.sent
    if n == 0:
        return NEUTRAL
    raw = (
        100 * counts.accepted / n
        - BOUNCE_WEIGHT * counts.bounce_rate
        - COMPLAINT_WEIGHT * counts.complaint_rate
    )
    raw = min(100.0, max(0.0, raw))
    blended = (raw * n + NEUTRAL * PRIOR_SENDS) / (n + PRIOR_SENDS)
    # Round half up, not Python's half-to-even, so the same counts always read the same.
    return min(100, max(0, math.floor(blended + 0.5)))


def score_window(now: datetime, rules: WarmupRules) -> tuple[date, date]:
    """The UTC days (first, last; both included) whose outcomes the score covers."""
    today = as_utc(now).date()
    return today - timedelta(days=rules.score_window_days - 1), today
