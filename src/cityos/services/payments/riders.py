"""Pseudonymous rider ids: the ledger and the hub never hold a card number or a phone.

A rider's own id (a card's number, an app account) becomes ``rider:<pseudonym>`` with an
HMAC-SHA256 under the city's secret key (``[services.payments] pseudonym_key_path``): the
same rider gets the same account every day (so caps and transfers work), and without the
key no one can go from the pseudonym back to the id, nor test a guess. CityOS has no
shared privacy module with a pseudonym function yet; when it has, this is the one place
to call it from.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

PREFIX = "rider:"


def pseudonym(rider_id: str, key: bytes) -> str:
    """``rider:`` and 26 base32 characters (130 bits) of HMAC-SHA256(key, rider_id)."""
    digest = hmac.new(key, rider_id.encode("utf-8"), hashlib.sha256).digest()
    return PREFIX + base64.b32encode(digest).decode("ascii")[:26].lower()


def load_or_create_secret(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte key in ``path`` (hex), made (mode 0600) when there is none."""
    p = Path(path)
    if p.exists():
        return bytes.fromhex(p.read_text().strip())
    p.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key
