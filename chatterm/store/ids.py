"""Short, typeable conversation ids: 8 lowercase hex characters (``3f9a0c1e``).

32 random bits keep a collision unlikely for any personal history (and an insert retries one);
hex avoids letters people confuse, and any unambiguous prefix is accepted on the command line.
"""

from __future__ import annotations

import re
import secrets

ID_LENGTH = 8
_HEX = re.compile(r"[0-9a-f]+")


def new_id() -> str:
    return secrets.token_hex(ID_LENGTH // 2)


def is_valid(value: object) -> bool:
    return isinstance(value, str) and len(value) == ID_LENGTH and bool(_HEX.fullmatch(value))


def normalise_prefix(text: str) -> str | None:
    """The prefix as stored (lowercase), or ``None`` when it cannot match any id."""
    prefix = text.strip().lower()
    if not prefix or len(prefix) > ID_LENGTH or not _HEX.fullmatch(prefix):
        return None
    return prefix
