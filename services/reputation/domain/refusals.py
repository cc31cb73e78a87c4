"""Why a command cannot be carried out: the value domain rules return instead of raising.

A `Refusal` becomes a `command.rejected` answer on `ip.command_results` (`reason` = `code`,
`message` = `message`). Another account's entity reads as `not_found`, so nobody learns what
another account owns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RefusalCode = Literal["not_found", "conflict", "invalid"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A command refused by a domain rule.

    `not_found`: the entity does not exist for this account. `conflict`: the command breaks a
    rule given the current state. `invalid`: the command is wrong whatever the state.
    """

    code: RefusalCode
    message: str
