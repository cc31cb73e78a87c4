"""Answers to commands on `ip.command_results`, the same from every service.

Rejection reasons: `not_found` (no such entity in this account — another account's entity
reads the same), `conflict` (the entity's state does not allow it), `invalid` (the command
itself is malformed or breaks a rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import structlog

from shared.contract import topics
from shared.contract.envelope import CloudEvent
from shared.contract.events import CommandAccepted, CommandRejected
from shared.messages import Emit, Received, Rejected

log = structlog.get_logger(__name__)

RejectionReason = Literal["not_found", "conflict", "invalid"]


def accepted(event: Received) -> Emit:
    return Emit(
        topics.IP_COMMAND_RESULTS,
        key=event.data.account_id,
        type="command.accepted",
        data=CommandAccepted(
            account_id=event.data.account_id, command_id=event.id, command_type=event.type
        ),
    )


def rejected(
    account_id: str, command_id: str, command_type: str, reason: RejectionReason, message: str
) -> Emit:
    log.info("command rejected", reason=reason, detail=message)
    return Emit(
        topics.IP_COMMAND_RESULTS,
        key=account_id,
        type="command.rejected",
        data=CommandRejected(
            account_id=account_id,
            command_id=command_id,
            command_type=command_type,
            reason=reason,
            message=message,
        ),
    )


def answer_invalid_command(event: CloudEvent, rejection: Rejected) -> Sequence[Emit]:
    """A command whose data fails validation is dead-lettered and, when its account can be
    read, also answered `command.rejected` / `invalid` so the sender learns why."""
    account_id = event.data.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        return []
    return [rejected(account_id, event.id, event.type, "invalid", rejection.message)]
