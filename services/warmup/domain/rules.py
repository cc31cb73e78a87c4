"""Every threshold, share, minimum and period of the warm-up, with its default and source.

`WarmupRules` is a plain value: the service builds it once from settings and passes it to
the rules. Each field's description says where the default comes from; docs/warmup.md has
the same table with links.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Mode = Literal["earned", "calendar"]


class WarmupRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default_schedule: str = Field(
        default="standard-14",
        description="Schedule used when neither ip.requested nor ip.warmup.start names one: "
        "the 14-day plan of seed 000 ('gradually increases ... over 14 days').",
    )
    default_mode: Mode = Field(
        default="earned",
        description="How days advance unless the IP says otherwise. 'earned': progress is "
        "earned, not granted by the calendar; 'calendar': seed 000's one day per elapsed day.",
    )
    advance_share: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="Share of the day's daily limit an IP must deliver on a UTC day to advance. "
        "Source: SparkPost's automatic IP warm-up advances an IP to its next stage once it has "
        "sent 90% of the current stage's volume (figure as given in the warm-up issue; see "
        "docs/warmup.md).",
    )
    hold_bounce_rate: float = Field(
        default=0.05,
        gt=0.0,
        le=1.0,
        description="A closed day whose bounce rate (bounced / sent) is at or above this holds. "
        "Source: Mailgun disables a sending domain past its bounce threshold, reported as 5% "
        "(Mailgun's help page gives no number; see docs/warmup.md).",
    )
    hold_complaint_rate: float = Field(
        default=0.001,
        gt=0.0,
        le=1.0,
        description="A closed day whose complaint rate (complained / accepted) is at or above "
        "this holds. Source: Gmail email sender guidelines (2024 bulk sender rules): keep the "
        "spam rate reported in Postmaster Tools below 0.1%.",
    )
    suspend_complaint_rate: float = Field(
        default=0.003,
        gt=0.0,
        le=1.0,
        description="A complaint rate at or above this, over at least `suspend_min_sends` sends "
        "of the current UTC day, suspends a warming IP. Source: Gmail email sender guidelines "
        "(2024): never let the spam rate reach 0.3% or higher.",
    )
    suspend_min_sends: int = Field(
        default=1000,
        ge=1,
        description="Sends of the day needed before a complaint rate can suspend. ipfleet's "
        "choice, derived from Gmail's 0.3%: below 334 sends one complaint is already 0.3%, so a "
        "floor of 1,000 means at least three complaints make a spike. Smaller days still hold on "
        "`hold_complaint_rate`.",
    )
    suspension_period: timedelta = Field(
        default=timedelta(hours=24),
        gt=timedelta(0),
        description="How long a suspended IP rests before it resumes one schedule day back. "
        "ipfleet's choice: one full daily reporting period (Gmail Postmaster Tools reports the "
        "spam rate per day), so the spike's day is over before the IP sends again.",
    )
    idle_period: timedelta = Field(
        default=timedelta(days=30),
        gt=timedelta(0),
        description="An active IP that sends nothing for this long must warm again. Source: "
        "Twilio SendGrid, 'Warming up an IP address': warm up again an IP you have not sent on "
        "in more than 30 days.",
    )
    rewarm_day: int = Field(
        default=1,
        ge=1,
        description="Schedule day an idle IP returns to (clamped to the schedule's last limited "
        "day). Source: SendGrid treats a 30-day idle IP like a new one ('you need to warm it "
        "up'), so the default starts over at day 1.",
    )
    score_window: timedelta = Field(
        default=timedelta(days=30),
        ge=timedelta(days=1),
        description="Rolling window of outcomes behind the reputation score, in whole UTC days "
        "(today included). Source: Validity's Sender Score, a 0-100 IP score 'calculated on a "
        "rolling 30-day average' (senderscore.org).",
    )

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Self:
        if self.hold_complaint_rate > self.suspend_complaint_rate:
            raise ValueError(
                "hold_complaint_rate must not exceed suspend_complaint_rate: a rate that "
                "suspends must also hold"
            )
        return self

    @property
    def score_window_days(self) -> int:
        return max(1, self.score_window // timedelta(days=1))
