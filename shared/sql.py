"""Named SQL statements kept in plain `.sql` files beside the code that runs them.

A file holds statements separated by `-- name: NAME` lines; parameters are asyncpg's `$1`.
Statements are read once at import, so a typo in a name fails at start-up, not mid-stream.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class Statements:
    """Attribute access to the statements of one `.sql` file."""

    def __init__(self, source: str, origin: str) -> None:
        self._origin = origin
        self._sql: dict[str, str] = {}
        parts = _NAME_LINE.split(source)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in self._sql:
                raise ValueError(f"{origin}: statement {name!r} is defined twice")
            self._sql[name] = body.strip().rstrip(";")

    def __getattr__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise AttributeError(f"{self._origin} has no statement {name!r}") from None

    def names(self) -> list[str]:
        return list(self._sql)


def load_statements(package: str, filename: str) -> Statements:
    """Load `filename` from `package` (a dotted module path)."""
    text = (resources.files(package) / filename).read_text()
    return Statements(text, f"{package}/{filename}")
