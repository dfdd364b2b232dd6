"""The audit log over an :class:`~cityos.hub.store.audit.AuditStore`: appending records in
O(log n), inclusion and consistency proofs, signed tree heads, checkpoints, and
:func:`verify_checkpoint` (what a third party runs on two exported checkpoints)."""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cityos.hub.model import now_iso
from cityos.hub.store.audit import (
    AuditEntry,
    AuditHead,
    AuditStore,
    HasAuditStore,
    audit_store_for,
)
from cityos.security.audit.anchor import anchor_path_for, read_anchor, write_anchor
from cityos.security.audit.errors import AuditError, InvalidCheckpoint
from cityos.security.audit.keys import (
    AuditKey,
    _b64,
    _unb64,
    head_from_json,
    head_json,
    tree_head_data,
    verify_head,
)
from cityos.security.audit.merkle import (
    EMPTY_ROOT,
    _split,
    canonical,
    consistency_path,
    frontier_push,
    frontier_root,
    inclusion_path,
    leaf_hash,
    node_hash,
    pack_frontier,
    root_of,
    unpack_frontier,
    verify_consistency,
)

TILE = 256  # leaves read (and complete subtrees cached) per unit
CHECKPOINT_FORMAT = "cityos-audit-checkpoint/1"
RECORD_FIELDS = ("actor", "tenant", "action", "target", "outcome")


class AuditLog:
    """The audit log over an :class:`~cityos.hub.store.audit.AuditStore` (SQLite or
    PostgreSQL; a :class:`~cityos.hub.store.base.Store` stands for its ``store.audit``).

    ``key`` signs tree heads; without one, the key in ``key_path`` is loaded, or made on
    the first signature. Appending works without a key. Each signed head is also kept in
    the anchor file (``anchor_path``, default one per database beside ``key_path``):
    how far the log reached, outside the database.
    """

    def __init__(
        self,
        store: AuditStore | HasAuditStore,
        *,
        key: AuditKey | None = None,
        key_path: str | os.PathLike[str] | None = None,
        anchor_path: str | os.PathLike[str] | None = None,
        cache_size: int = 1 << 18,  # complete subtrees of >= 256 leaves (~100 bytes each)
    ) -> None:
        self.store = audit_store_for(store)
        self._key = key
        self.key_path = Path(key_path) if key_path is not None else None
        self.anchor_path = anchor_path_for(key_path, anchor_path, self.store.database)
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- keys ---------------------------------------------------------------------------
    @property
    def key(self) -> AuditKey:
        """The signing key (made in ``key_path`` on first use)."""
        with self._lock:
            if self._key is None or self._key.private is None:
                if self.key_path is None:
                    raise AuditError("no audit signing key: give key= or key_path=")
                self._key = AuditKey.load_or_create(self.key_path)
            return self._key

    def public_key(self) -> AuditKey:
        """The key heads are checked with; never makes one."""
        if self._key is not None:
            return self._key
        if self.key_path is None or not self.key_path.exists():
            raise AuditError(f"no audit key at {self.key_path}: nothing has been signed yet")
        self._key = AuditKey.load(self.key_path)
        return self._key

    # -- appending ----------------------------------------------------------------------
    def append(self, record: Mapping[str, Any]) -> int:
        """Append one record (actor, tenant, action, target, outcome, and anything else
        JSON); ``time`` is now unless given, ``seq`` is set by the log. Its seq."""
        return self.append_many([record])[0]

    def append_many(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Append records in one transaction (cheaper per record than one by one)."""
        now = now_iso()
        bodies = [_record(r, now) for r in records]
        if not bodies:
            return []

        def build(size: int, state: bytes) -> tuple[list[AuditEntry], bytes]:
            frontier = unpack_frontier(state, size)
            entries = []
            for i, body in enumerate(bodies):
                seq = size + i
                body["seq"] = seq
                text = canonical(body)
                h = leaf_hash(text)
                frontier_push(frontier, seq, h)
                entries.append(AuditEntry(seq, body["time"], text.decode(), h))
            return entries, pack_frontier(frontier)

        return [e.seq for e in self.store.append(build)]

    # -- reading --------------------------------------------------------------------------
    def size(self) -> int:
        return self.store.state()[0]

    def entries(self, start: int, end: int) -> list[AuditEntry]:
        return self.store.entries(start, end)

    def root(self, size: int | None = None) -> bytes:
        """The tree's root at ``size`` leaves (default: now)."""
        current, state = self.store.state()
        if size is None or size == current:
            return frontier_root(unpack_frontier(state, current))
        self._check_size(size, current)
        return self._mth(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._size_or_current(size)
        if not 0 <= index < size:
            raise AuditError(f"index must be in 0..{size - 1}, not {index}")
        return inclusion_path(index, size, self._mth)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        second = self._size_or_current(second)
        if not 0 <= first <= second:
            raise AuditError(f"first must be in 0..{second}, not {first}")
        return consistency_path(first, second, self._mth)

    def _size_or_current(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        self._check_size(size, current)
        return size

    @staticmethod
    def _check_size(size: int, current: int) -> None:
        if not 0 <= size <= current:
            raise AuditError(f"the log holds {current} records; no tree of size {size}")

    # -- subtree hashes -------------------------------------------------------------------
    def _mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self._perfect(start, n)
        k = _split(n)
        return node_hash(self._mth(start, start + k), self._mth(start + k, end))

    def _cached(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            h = self._cache.get(key)
            if h is not None:
                self._cache.move_to_end(key)
            return h

    def _remember(self, key: tuple[int, int], h: bytes) -> None:
        with self._lock:
            self._cache[key] = h
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _perfect(self, start: int, width: int) -> bytes:
        """The root of the complete subtree of ``width`` (a power of two) leaves at ``start``."""
        if width < TILE:
            return root_of(self._leaves(start, start + width))
        key = (start, width)
        h = self._cached(key)
        if h is None:
            h = root_of(self._tiles(start // TILE, width // TILE))
            self._remember(key, h)
        return h

    def _tiles(self, first: int, count: int) -> list[bytes]:
        """Roots of tiles ``first`` .. ``first + count - 1``: cached, else read in bulk."""
        out: list[bytes | None] = [
            self._cached((t * TILE, TILE)) for t in range(first, first + count)
        ]
        i = 0
        while i < count:
            if out[i] is not None:
                i += 1
                continue
            j = i
            while j < count and out[j] is None and j - i < 64:  # ≤ 16,384 leaves a query
                j += 1
            leaves = self._leaves((first + i) * TILE, (first + j) * TILE)
            for t in range(i, j):
                h = root_of(leaves[(t - i) * TILE : (t - i + 1) * TILE])
                self._remember(((first + t) * TILE, TILE), h)
                out[t] = h
            i = j
        return out  # type: ignore[return-value]

    def _leaves(self, start: int, end: int) -> list[bytes]:
        leaves = self.store.leaf_hashes(start, end)
        if len(leaves) != end - start:
            raise AuditError(
                f"the audit log is missing records in seq {start}..{end - 1}:"
                " run 'cityos audit verify'"
            )
        return leaves

    # -- signed tree heads ----------------------------------------------------------------
    def latest_head(self) -> AuditHead | None:
        heads = self.store.heads(latest=True)
        return heads[0] if heads else None

    def sign_head(self, *, force: bool = False) -> AuditHead:
        """Sign the current tree head, keep it and anchor it; the latest one if the log has
        not grown since (unless ``force``). Refuses (AuditError) when the log no longer
        extends its anchor: signing it would bless the deletion or the rewrite."""
        latest = self.latest_head()
        size, state = self.store.state()
        if latest is not None and latest.tree_size == size and not force:
            self._anchor(latest)
            return latest
        key = self.key
        root = frontier_root(unpack_frontier(state, size))
        ts = int(time.time() * 1000)
        head = AuditHead(size, ts, root, key.sign(tree_head_data(size, ts, root)), key.key_id)
        self._check_anchor(head)
        self.store.add_head(head)
        self._anchor(head)
        return head

    def _anchor(self, head: AuditHead) -> None:
        if self.anchor_path is not None:
            self._check_anchor(head)
            write_anchor(self.anchor_path, head)

    def _check_anchor(self, head: AuditHead) -> None:
        """The log ``head`` signs must extend the anchor: at least its size, the same root
        there, the same key."""
        if self.anchor_path is None:
            return
        try:
            anchor = read_anchor(self.anchor_path)
        except FileNotFoundError:
            return
        except InvalidCheckpoint as exc:
            raise AuditError(f"{exc}: not signing; run 'cityos audit verify'") from exc
        where = f"its anchor {self.anchor_path} (size {anchor.tree_size:,})"
        if anchor.key_id != head.key_id:
            raise AuditError(f"{where} is signed by another key: not signing")
        if anchor.tree_size > head.tree_size:
            raise AuditError(
                f"the audit log holds {head.tree_size:,} records, fewer than {where}: records"
                " were deleted; not signing: run 'cityos audit verify'"
            )
        if not hmac.compare_digest(self.root(anchor.tree_size), anchor.root_hash):
            raise AuditError(
                f"the audit log no longer matches {where}: its history was rewritten; not"
                " signing: run 'cityos audit verify'"
            )

    def checkpoint(self, since: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The latest signed head with the public key, for a third party to keep; with
        ``since`` (an earlier checkpoint of this log) also the consistency proof from it."""
        head = self.latest_head()
        if head is None:
            raise AuditError("no signed tree head yet: run 'cityos audit head --sign'")
        key = self.public_key()
        out: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            **head_json(head),
            "public_key": key.public_pem(),
            "signature_input": "RFC 6962 TreeHeadSignature (v1, tree_hash, timestamp, "
            "tree_size, root), Ed25519",
        }
        if since is not None:
            old = head_from_json(since)
            if old.tree_size > head.tree_size:
                raise AuditError(
                    f"the earlier checkpoint is at size {old.tree_size}, past this log's"
                    f" latest signed head ({head.tree_size})"
                )
            if old.key_id and old.key_id != key.key_id:
                raise AuditError("the earlier checkpoint is from another log (log id differs)")
            if old.tree_size and not hmac.compare_digest(self.root(old.tree_size), old.root_hash):
                raise AuditError(
                    f"this log does not match the earlier checkpoint at size {old.tree_size}:"
                    " its history was rewritten"
                )
            out["consistency"] = {
                "first": old.tree_size,
                "second": head.tree_size,
                "proof": [_b64(h) for h in self.consistency_proof(old.tree_size, head.tree_size)],
            }
        return out


def _record(record: Mapping[str, Any], now: str) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise TypeError(f"an audit record is a mapping, not {type(record).__name__}")
    if "seq" in record:
        raise ValueError("an audit record's seq is set by the log")
    action = record.get("action")
    if not isinstance(action, str) or not action:
        raise ValueError("an audit record needs an action")
    body = {name: None for name in RECORD_FIELDS}
    body.update(record)
    body.setdefault("time", now)
    if not isinstance(body["time"], str):
        raise ValueError("an audit record's time is text (the hub's format)")
    return body


def verify_checkpoint(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    proof: Sequence[str | bytes] | None = None,
    *,
    public_key: str | bytes | None = None,
) -> None:
    """Check that checkpoint ``new`` extends checkpoint ``old`` of the same log: both
    signatures verify with the log's key (``public_key`` if given, else the one in ``old``,
    as first seen) and ``proof`` (base64 or raw hashes; default: ``new``'s own
    ``consistency`` from ``old``'s size) is an RFC 9162 consistency proof between their
    roots. Raises :class:`InvalidCheckpoint` saying why not."""
    pem = public_key if public_key is not None else old.get("public_key")
    if not pem:
        raise InvalidCheckpoint("no public key: give public_key= or keep it in the checkpoint")
    try:
        key = AuditKey.from_pem(pem)
    except (ValueError, AuditError) as exc:
        raise InvalidCheckpoint(f"bad public key: {exc}") from exc
    heads = {}
    for name, cp in (("old", old), ("new", new)):
        head = head_from_json(cp)
        if head.key_id and head.key_id != key.key_id:
            raise InvalidCheckpoint(f"the {name} checkpoint is from another log (log id differs)")
        head.key_id = key.key_id
        if not verify_head(head, key):
            raise InvalidCheckpoint(f"the {name} checkpoint's signature does not verify")
        heads[name] = head
    a, b = heads["old"], heads["new"]
    if b.tree_size < a.tree_size:
        raise InvalidCheckpoint(
            f"the new checkpoint ({b.tree_size}) is smaller than the old ({a.tree_size})"
        )
    if proof is None:
        given = new.get("consistency") or {}
        if given.get("first") != a.tree_size or given.get("second") != b.tree_size:
            raise InvalidCheckpoint(
                f"no consistency proof from size {a.tree_size} to {b.tree_size}: fetch"
                f" /audit/proof/consistency?first={a.tree_size}&second={b.tree_size}"
            )
        proof = given.get("proof") or []
    hashes = [p if isinstance(p, bytes) else _unb64(p, "a proof hash") for p in proof]
    if not verify_consistency(a.tree_size, b.tree_size, a.root_hash, b.root_hash, hashes):
        raise InvalidCheckpoint(
            f"the log at size {b.tree_size} does not extend the one at size {a.tree_size}:"
            " its history was rewritten (or the proof is wrong)"
        )
