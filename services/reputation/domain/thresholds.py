"""The thresholds that band a domain's health check, with ipfleet's published defaults.

Mailgun does not publish the thresholds behind its dynamic IP pools; ipfleet does, and every
default below names where it comes from. Each one can be changed per account
(`dynamic_pools.configure` with `thresholds`), by merging the account's values onto a base.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.reputation.domain.refusals import Refusal

GMAIL_SENDER_GUIDELINES = "https://support.google.com/mail/answer/81126"
MAILGUN_DOMAIN_DISABLED = (
    "https://help.mailgun.com/hc/en-us/articles/202051664-My-domain-has-been-disabled-Now-what"
)
MAILGUN_LIMITS_REPORTED = (
    "https://help.prismacampaigns.com/faqs/diagnose/high-bounce-complaint-rates-mailgun"
)
SES_THRESHOLDS_SUMMARY = "https://blog.sendops.dev/blog/fix-aws-ses-bounce-and-complaint-rate/"


class DynamicPoolThresholds(BaseModel):
    """Where the good and poor bands of each metric start, and how much evidence moves a domain.

    A rate below its `*_good` value is in the good band; at or above its `*_poor` value, in the
    poor band; in between (the margin) the domain keeps its current band.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bounce_good: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description=(
            "Bounce rate below which the metric is good: 2%, Amazon SES's recommended ceiling "
            "for a healthy sender (SES reviews an account at 5%, pauses it at 10%; as "
            f"summarised in {SES_THRESHOLDS_SUMMARY})."
        ),
    )
    bounce_poor: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description=(
            "Bounce rate at or above which the metric is poor: 5%, Mailgun's bounce ceiling, "
            f"past which it disables a sending domain ({MAILGUN_DOMAIN_DISABLED}; the 5% "
            f"figure as reported in {MAILGUN_LIMITS_REPORTED}). Amazon SES puts an account "
            "under review at the same 5%."
        ),
    )
    complaint_good: float = Field(
        default=0.001,
        ge=0.0,
        le=1.0,
        description=(
            "Complaint (spam) rate below which the metric is good: 0.1%, Gmail's bulk-sender "
            f"rule 'keep spam rates below 0.10%' ({GMAIL_SENDER_GUIDELINES})."
        ),
    )
    complaint_poor: float = Field(
        default=0.003,
        ge=0.0,
        le=1.0,
        description=(
            "Complaint (spam) rate at or above which the metric is poor: 0.3%, the rate Gmail "
            f"says a sender must never reach ({GMAIL_SENDER_GUIDELINES})."
        ),
    )
    min_processed_count: int = Field(
        default=1000,
        ge=0,
        description=(
            "Messages a health check must cover before its rates are judged; below it the "
            "domain belongs to dynamic_new. 1000 is derived from Gmail's 0.1% line: at 1000 "
            "messages a single complaint is 0.1%; with fewer, one complaint alone is above it "
            "(and below 334 messages it alone reaches the 0.3% poor line), so the rate says "
            "more about chance than about the sender. ipfleet's own choice; Mailgun does not "
            "publish its minimum."
        ),
    )
    good_checks_to_leave_poor: int = Field(
        default=2,
        ge=1,
        description=(
            "Consecutive good health checks a domain in dynamic_poor needs before it leaves "
            "(entering dynamic_poor takes one check). 2 is ipfleet's default against flapping, "
            "set by the dynamic pools issue."
        ),
    )

    @model_validator(mode="after")
    def _good_not_above_poor(self) -> DynamicPoolThresholds:
        if self.bounce_good > self.bounce_poor:
            raise ValueError(
                f"bounce_good ({self.bounce_good}) must not exceed bounce_poor ({self.bounce_poor})"
            )
        if self.complaint_good > self.complaint_poor:
            raise ValueError(
                f"complaint_good ({self.complaint_good}) must not exceed "
                f"complaint_poor ({self.complaint_poor})"
            )
        return self


DEFAULT_THRESHOLDS = DynamicPoolThresholds()


def merge_thresholds(
    overrides: Mapping[str, Any] | None,
    base: DynamicPoolThresholds = DEFAULT_THRESHOLDS,
) -> DynamicPoolThresholds | Refusal:
    """`base` with the account's `overrides` applied, validated as a whole.

    `None` values in `overrides` keep the base value, so the `thresholds` object of a
    `dynamic_pools.configure` command (every field optional) can be passed as it arrives, e.g.
    `cmd.thresholds.model_dump()`. An unknown name, a value out of range, or a good threshold
    above its poor one (counting the base values not overridden) is refused as `invalid`.
    """
    if not overrides:
        return base
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return DynamicPoolThresholds.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        return Refusal("invalid", f"invalid thresholds: {problems}")


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
