"""The warmup service's settings, from the environment (or `.env`), all prefixed
`IPFLEET_WARMUP_` (its database: `IPFLEET_WARMUP_DATABASE_URL`, else `DATABASE_URL`).
Unset rule overrides keep `WarmupRules`' defaults (docs/warmup.md has each one with its
source)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.warmup.domain.rules import Mode, WarmupRules
from services.warmup.domain.schedules import Schedule, load_schedules, select_schedule
from shared.settings import ServiceSettings


class WarmupSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", env_prefix="IPFLEET_WARMUP_", populate_by_name=True
    )

    schedules_dir: Path | None = Field(
        default=None,
        description="A directory of operator-added schedules (*.toml, the format of "
        "services/warmup/schedules.toml), loaded beside the shipped ones.",
    )
    lateness_minutes: float = Field(
        default=5.0,
        ge=0,
        description="Allowed lateness: hours and days are judged only once the latest event "
        "time seen is this far past their end, so sends a little late still count toward them.",
    )
    sweep_lateness_minutes: float = Field(
        default=60.0,
        ge=0,
        description="Allowance for IPs none of whose sends has been read yet (their "
        "send.recorded partition is not known): the close-days sweep judges them on the "
        "slowest partition's clock less this. An IP whose sends are read is judged on its own "
        "partition's clock less `lateness_minutes`, by its batches and by the sweep alike.",
    )
    dedup_retention_days: int = Field(
        default=7,
        ge=1,
        description="How long (event time) send.recorded ids are kept for deduplication; "
        "older sends are dead-lettered as OutsideRetention.",
    )
    sweep_batch: int = Field(
        default=500, ge=1, description="IPs the close-days sweep brings up to date per run."
    )

    # Overrides of WarmupRules; None keeps the rule's default.
    default_schedule: str | None = None
    default_mode: Mode | None = None
    advance_share: float | None = None
    hold_bounce_rate: float | None = None
    hold_complaint_rate: float | None = None
    suspend_complaint_rate: float | None = None
    suspend_min_sends: int | None = None
    suspension_hours: float | None = None
    idle_days: float | None = None
    rewarm_day: int | None = None
    score_window_days: int | None = None

    @property
    def lateness(self) -> timedelta:
        return timedelta(minutes=self.lateness_minutes)

    @property
    def sweep_lateness(self) -> timedelta:
        return timedelta(minutes=max(self.sweep_lateness_minutes, self.lateness_minutes))

    def rules(self) -> WarmupRules:
        """WarmupRules with the overrides that are set (validated by WarmupRules itself)."""
        overrides: dict[str, Any] = {
            name: getattr(self, name)
            for name in (
                "default_schedule",
                "default_mode",
                "advance_share",
                "hold_bounce_rate",
                "hold_complaint_rate",
                "suspend_complaint_rate",
                "suspend_min_sends",
                "rewarm_day",
            )
            if getattr(self, name) is not None
        }
        if self.suspension_hours is not None:
            overrides["suspension_period"] = timedelta(hours=self.suspension_hours)
        if self.idle_days is not None:
            overrides["idle_period"] = timedelta(days=self.idle_days)
        if self.score_window_days is not None:
            overrides["score_window"] = timedelta(days=self.score_window_days)
        return WarmupRules(**overrides)

    def schedules(self, rules: WarmupRules) -> dict[str, Schedule]:
        """Shipped plus operator schedules; refuses to start when the default is unknown."""
        schedules = load_schedules(self.schedules_dir)
        select_schedule(schedules, None, rules.default_schedule)
        return schedules
