"""The anchor: the latest signed head, kept in a file outside the database, so a log
truncated or rewritten together with its signed heads is still caught."""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

import orjson

from cityos.hub.store.audit import (
    AuditHead,
    AuditStore,
    HasAuditStore,
    audit_store_for,
)
from cityos.security.audit.errors import AuditError, InvalidCheckpoint
from cityos.security.audit.keys import head_from_json, head_json
from cityos.security.audit.merkle import HASH_SIZE

ANCHOR_FORMAT = "cityos-audit-anchor/1"
ANCHOR_NAME = "audit-anchor.json"


def anchor_path_for(
    key_path: str | os.PathLike[str] | None,
    configured: str | os.PathLike[str] | None = None,
    database: str | None = None,
) -> Path | None:
    """Where the anchor is kept: ``configured``, else beside the key — one per database
    (``audit-anchor-<digest of database_identity>.json``), since an anchor says how far *one*
    log reached: a second database signed with the same key must not be judged by it."""
    if configured:
        return Path(configured)
    if not key_path:
        return None
    if database is None:
        return Path(key_path).with_name(ANCHOR_NAME)
    digest = hashlib.sha256(database.encode()).hexdigest()[:12]
    return Path(key_path).with_name(f"audit-anchor-{digest}.json")


def database_identity(store: AuditStore | HasAuditStore) -> str:
    """Which database a store's log lives in: the SQLite file's real path, or the
    PostgreSQL server, database and schema (never the password)."""
    return audit_store_for(store).database


def anchor_json(head: AuditHead) -> dict[str, Any]:
    """The anchor: a signed head as JSON (``head_json``'s fields), to keep and publish."""
    return {"format": ANCHOR_FORMAT, **head_json(head)}


def read_anchor(path: str | os.PathLike[str]) -> AuditHead:
    """The signed head an anchor file holds. FileNotFoundError if there is none;
    InvalidCheckpoint if it is not an anchor (or a checkpoint: same fields)."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InvalidCheckpoint(f"the anchor {path} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidCheckpoint(f"the anchor {path} is not a JSON object")
    try:
        head = head_from_json(data)
    except InvalidCheckpoint as exc:
        raise InvalidCheckpoint(f"the anchor {path} is not a signed tree head: {exc}") from exc
    if len(head.root_hash) != HASH_SIZE:
        raise InvalidCheckpoint(f"the anchor {path} holds a root of {len(head.root_hash)} bytes")
    return head


def write_anchor(path: str | os.PathLike[str], head: AuditHead) -> bool:
    """Keep ``head`` as the anchor in ``path`` (mode 0600), unless the one there is newer
    (workers sign concurrently: the anchor never goes back). Written whole or not at all
    (temporary file, fsync, rename), under a lock on the folder. Whether it was written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(p.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        try:
            kept: AuditHead | None = read_anchor(p)
        except FileNotFoundError:
            kept = None
        except InvalidCheckpoint as exc:  # evidence: never overwritten
            raise AuditError(f"{exc}: move it away once looked at") from exc
        if kept is not None and (kept.tree_size, kept.timestamp) >= (
            head.tree_size,
            head.timestamp,
        ):
            return False
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps(anchor_json(head), option=orjson.OPT_INDENT_2) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
        os.fsync(folder)  # the rename itself survives a crash
        return True
    finally:
        os.close(folder)  # and the lock with it
