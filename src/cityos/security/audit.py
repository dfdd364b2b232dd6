"""The audit log: every write, denied request and administrative action, as a Merkle log.

Kept in the manner of Certificate Transparency (RFC 6962, RFC 9162): each record is
canonical JSON (keys sorted, no whitespace, UTF-8) carrying its own position ``seq``; its
leaf hash is ``SHA-256(0x00 || record)``, interior nodes ``SHA-256(0x01 || left || right)``
and the tree over leaves 0..n-1 is RFC 6962's Merkle Tree Hash. Periodically the log signs
a tree head (size, root, time) with Ed25519; inclusion proofs (a record is in the tree a
head signed) and consistency proofs (a later head extends an earlier one) are RFC 9162's,
served under ``/audit/…`` by :func:`routes`.

Appending is O(log n): the store keeps the tree's *frontier* (the roots of its maximal
perfect subtrees, one per set bit of the size) next to the records and updates it in the
append's transaction, so the root of the current tree never needs the records again.
Proofs read leaf hashes, 256 at a time ("tiles"), and keep the hashes of complete subtrees
in memory (they never change).

Why our own ~150 lines of RFC 9162 rather than pymerkle (docs/security.md): pymerkle's
proofs are its own format (1-based indices, the leaf and ``rule``/``subset`` bits inside
the proof, consistency paths that are not RFC 9162's) that no CT or transparency-dev
verifier reads, it keeps no frontier (a root is recomputed from stored leaves) and its
storage is SQLite files of its own. The tests check our roots and proofs against pymerkle
(and have pymerkle verify our inclusion paths).

:func:`verify_log` (``cityos audit verify``) recomputes everything from the stored records
and says what was edited, deleted, inserted or reordered; :func:`verify_checkpoint` is what
a third party runs on two exported checkpoints.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import hmac
import logging
import os
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from cityos.hub.model import now_iso
from cityos.hub.store.base import AuditEntry, AuditHead, Store

log = logging.getLogger("cityos.audit")

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962: MTH({}) = SHA-256()
TILE = 256  # leaves read (and complete subtrees cached) per unit
CHECKPOINT_FORMAT = "cityos-audit-checkpoint/1"
RECORD_FIELDS = ("actor", "tenant", "action", "target", "outcome")


class AuditError(Exception):
    """The audit log cannot do what was asked (bad sizes, no key, no signed head, …)."""


class InvalidCheckpoint(Exception):
    """A checkpoint (or a pair of them) does not verify; the message says why."""


# ------------------------------------------------------------------ RFC 6962 / 9162 hashing


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): where RFC 6962 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def frontier_push(frontier: list[bytes], size: int, leaf: bytes) -> None:
    """Add leaf number ``size`` to the frontier of a tree of ``size`` leaves (in place).

    The frontier holds the roots of the tree's maximal perfect subtrees, largest (leftmost)
    first: one per set bit of the size. Amortised one node hash per leaf.
    """
    carry = leaf
    while size & 1:
        carry = node_hash(frontier.pop(), carry)
        size >>= 1
    frontier.append(carry)


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """RFC 6962's Merkle Tree Hash of the tree the frontier describes."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for h in reversed(frontier[:-1]):
        root = node_hash(h, root)
    return root


def pack_frontier(frontier: Sequence[bytes]) -> bytes:
    return b"".join(frontier)


def unpack_frontier(data: bytes, size: int) -> list[bytes]:
    if len(data) != HASH_SIZE * size.bit_count():
        raise AuditError(f"the audit log's state is corrupt (frontier of {len(data)} bytes)")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def root_of(leaves: Iterable[bytes]) -> bytes:
    """RFC 6962's Merkle Tree Hash of these leaf hashes."""
    frontier: list[bytes] = []
    for n, h in enumerate(leaves):
        frontier_push(frontier, n, h)
    return frontier_root(frontier)


Subtree = Callable[[int, int], bytes]  # (start, end) -> MTH(D[start:end])


def inclusion_path(index: int, size: int, mth: Subtree) -> list[bytes]:
    """RFC 9162 2.1.3.1: the audit path of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise AuditError(f"no leaf {index} in a tree of {size}")
    path = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(mth(start + k, end))
            end = start + k
        else:
            path.append(mth(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(first: int, second: int, mth: Subtree) -> list[bytes]:
    """RFC 9162 2.1.4.1: the proof that the tree of ``second`` leaves extends the tree of
    ``first`` (empty when first is 0 or equal to second)."""
    if not 0 <= first <= second:
        raise AuditError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    path = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(mth(start + k, end))
            end = start + k
        else:
            path.append(mth(start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:
        path.append(mth(start, end))
    path.reverse()
    return path


def _hashes_ok(path: Sequence[bytes]) -> bool:
    return all(isinstance(p, bytes) and len(p) == HASH_SIZE for p in path)


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: is ``leaf`` the hash at ``index`` of the tree with ``root``?"""
    if not (0 <= index < size and _hashes_ok(path)):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: does the tree of ``second`` leaves extend the one of ``first``?"""
    if not (0 <= first <= second and _hashes_ok(path)):
        return False
    if first == second:
        return not path and hmac.compare_digest(first_root, second_root)
    if first == 0:  # every tree extends the empty one
        return not path and hmac.compare_digest(first_root, EMPTY_ROOT)
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:  # the old tree is a complete left subtree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record is hashed as: JSON, keys sorted, no whitespace, UTF-8 (RFC 8785
    for what audit records hold: strings, integers, booleans, null, lists, objects)."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


# ------------------------------------------------------------------------ signing keys


class AuditKey:
    """The log's Ed25519 key: signs tree heads (needs the private key) and checks them."""

    def __init__(self, public: Ed25519PublicKey, private: Ed25519PrivateKey | None = None):
        self.public = public
        self.private = private
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # the log id, as CT makes it: SHA-256 of the DER SubjectPublicKeyInfo
        self.key_id = _b64(hashlib.sha256(der).digest())

    @classmethod
    def generate(cls) -> AuditKey:
        private = Ed25519PrivateKey.generate()
        return cls(private.public_key(), private)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> AuditKey:
        """A private key (PKCS#8 PEM) or a public one (SubjectPublicKeyInfo PEM)."""
        data = pem.encode() if isinstance(pem, str) else pem
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise AuditError("the audit key is not an Ed25519 key")
            return cls(private.public_key(), private)
        public = serialization.load_pem_public_key(data)
        if not isinstance(public, Ed25519PublicKey):
            raise AuditError("the audit public key is not an Ed25519 key")
        return cls(public)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AuditKey:
        p = Path(path)
        key = cls.from_pem(p.read_bytes())
        if key.private is not None and p.stat().st_mode & 0o077:
            log.warning("audit key %s is readable by others: chmod 600 it", p)
        return key

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> AuditKey:
        """The key in ``path``, made there (mode 0600) if there is none yet. Several workers
        starting at once end up with the same key: the file appears atomically, once."""
        p = Path(path)
        try:
            return cls.load(p)
        except FileNotFoundError:
            pass
        p.parent.mkdir(parents=True, exist_ok=True)
        key = cls.generate()
        assert key.private is not None
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, p)  # fails if another process made the key first: use theirs
            except FileExistsError:
                return cls.load(p)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("made a new audit signing key %s (log id %s)", p, key.key_id)
        return key

    def public_pem(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, data: bytes) -> bytes:
        if self.private is None:
            raise AuditError("signing needs the audit log's private key")
        return self.private.sign(data)

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def tree_head_data(tree_size: int, timestamp: int, root_hash: bytes) -> bytes:
    """The bytes a tree head's signature covers: RFC 6962's TreeHeadSignature (3.5) —
    version v1 (0), signature type tree_hash (1), uint64 timestamp (ms), uint64 tree size,
    the 32-byte root."""
    return struct.pack(">BBQQ", 0, 1, timestamp, tree_size) + root_hash


def verify_head(head: AuditHead, key: AuditKey) -> bool:
    return (
        head.key_id == key.key_id
        and len(head.root_hash) == HASH_SIZE
        and key.verify(
            head.signature, tree_head_data(head.tree_size, head.timestamp, head.root_hash)
        )
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (ValueError, TypeError) as exc:
        raise InvalidCheckpoint(f"{what} is not base64") from exc


def head_json(head: AuditHead) -> dict[str, Any]:
    """A signed tree head as JSON (the field names of CT's get-sth)."""
    return {
        "tree_size": head.tree_size,
        "timestamp": head.timestamp,
        "sha256_root_hash": _b64(head.root_hash),
        "tree_head_signature": _b64(head.signature),
        "log_id": head.key_id,
    }


def head_from_json(data: Mapping[str, Any]) -> AuditHead:
    try:
        size, ts = data["tree_size"], data["timestamp"]
        if not (_is_count(size) and _is_count(ts)):
            raise InvalidCheckpoint("tree_size and timestamp must be integers in 0..2**64-1")
        return AuditHead(
            size,
            ts,
            _unb64(data["sha256_root_hash"], "sha256_root_hash"),
            _unb64(data["tree_head_signature"], "tree_head_signature"),
            str(data.get("log_id", "")),
        )
    except KeyError as exc:
        raise InvalidCheckpoint(f"a checkpoint needs {exc.args[0]}") from exc


# ------------------------------------------------------------------- the anchor (a file)

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


def database_identity(store: Any) -> str:
    """Which database a store's log lives in: the SQLite file's real path, or the
    PostgreSQL server, database and schema (never the password)."""
    if getattr(store, "engine", "") == "sqlite":
        return "sqlite:" + os.path.realpath(str(store.path))
    from urllib.parse import urlsplit

    parts = urlsplit(str(getattr(store, "url", "")))
    where = f"{parts.hostname}:{parts.port}{parts.path}"
    return f"{getattr(store, 'engine', '?')}:{where}#{getattr(store, 'schema', '')}"


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


# ------------------------------------------------------------------------------ the log


class AuditLog:
    """The audit log over a :class:`~cityos.hub.store.base.Store` (SQLite or PostgreSQL).

    ``key`` signs tree heads; without one, the key in ``key_path`` is loaded, or made on
    the first signature. Appending works without a key. Each signed head is also kept in
    the anchor file (``anchor_path``, default one per database beside ``key_path``):
    how far the log reached, outside the database.
    """

    def __init__(
        self,
        store: Store,
        *,
        key: AuditKey | None = None,
        key_path: str | os.PathLike[str] | None = None,
        anchor_path: str | os.PathLike[str] | None = None,
        cache_size: int = 1 << 18,  # complete subtrees of >= 256 leaves (~100 bytes each)
    ) -> None:
        self.store = store
        self._key = key
        self.key_path = Path(key_path) if key_path is not None else None
        self.anchor_path = anchor_path_for(key_path, anchor_path, database_identity(store))
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

        return [e.seq for e in self.store.audit_append(build)]

    # -- reading --------------------------------------------------------------------------
    def size(self) -> int:
        return self.store.audit_state()[0]

    def entries(self, start: int, end: int) -> list[AuditEntry]:
        return self.store.audit_entries(start, end)

    def root(self, size: int | None = None) -> bytes:
        """The tree's root at ``size`` leaves (default: now)."""
        current, state = self.store.audit_state()
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
        leaves = self.store.audit_leaf_hashes(start, end)
        if len(leaves) != end - start:
            raise AuditError(
                f"the audit log is missing records in seq {start}..{end - 1}:"
                " run 'cityos audit verify'"
            )
        return leaves

    # -- signed tree heads ----------------------------------------------------------------
    def latest_head(self) -> AuditHead | None:
        heads = self.store.audit_heads(latest=True)
        return heads[0] if heads else None

    def sign_head(self, *, force: bool = False) -> AuditHead:
        """Sign the current tree head, keep it and anchor it; the latest one if the log has
        not grown since (unless ``force``). Refuses (AuditError) when the log no longer
        extends its anchor: signing it would bless the deletion or the rewrite."""
        latest = self.latest_head()
        size, state = self.store.audit_state()
        if latest is not None and latest.tree_size == size and not force:
            self._anchor(latest)
            return latest
        key = self.key
        root = frontier_root(unpack_frontier(state, size))
        ts = int(time.time() * 1000)
        head = AuditHead(size, ts, root, key.sign(tree_head_data(size, ts, root)), key.key_id)
        self._check_anchor(head)
        self.store.audit_add_head(head)
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


# ---------------------------------------------------------------------------- verifying


@dataclass
class Finding:
    """One thing wrong with the log: ``kind`` is edited, deleted, inserted, reordered,
    rewritten (a record and its leaf hash changed together: found by a signed head, the
    anchor or the log's state, which bound where), signature, malformed (a column holding
    what the log never writes there) or anchor (the anchor cannot be used); ``seq``..``last``
    the records concerned."""

    kind: str
    message: str
    seq: int | None = None
    last: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "last": self.last, "message": self.message}


@dataclass
class Anchor:
    """How far the log reached, known outside its database: the first ``tree_size`` records
    must have ``root_hash``. A signed head (``head``: the anchor file, a published copy) or
    a size and root given by hand; ``error`` says why it could not be read."""

    source: str
    tree_size: int | None = None
    root_hash: bytes | None = None
    head: AuditHead | None = None
    error: str | None = None
    result: str = "not checked"  # matched, mismatch, truncated, bad signature, unreadable

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Anchor:
        """The anchor in ``path``; never raises (an unreadable one carries its error)."""
        source = f"the anchor {path}"
        try:
            head = read_anchor(path)
        except (OSError, InvalidCheckpoint) as exc:
            return cls(source, error=str(exc), result="unreadable")
        return cls(source, head.tree_size, head.root_hash, head)

    @classmethod
    def expected(cls, tree_size: int, root_hex: str) -> Anchor:
        """``--expect-size N --expect-root HEX``; ValueError for a bad size or root."""
        if tree_size < 0:
            raise ValueError("the expected size must not be negative")
        try:
            root = bytes.fromhex(root_hex)
        except ValueError:
            raise ValueError(f"the expected root is not hex: {root_hex!r}") from None
        if len(root) != HASH_SIZE:
            raise ValueError(f"the expected root is {len(root)} bytes, not {HASH_SIZE}")
        return cls(f"the expected root at size {tree_size}", tree_size, root)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex() if self.root_hash is not None else None,
            "timestamp": self.head.timestamp if self.head is not None else None,
            "result": self.result,
            "error": self.error,
        }


NO_ANCHOR = (
    "no anchor: this verification is only as strong as the database (a log truncated, or"
    " rewritten, together with its signed heads would pass); keep the anchor file, or publish"
    " 'cityos audit head --json' and check with --expect-size/--expect-root"
)


@dataclass
class AuditReport:
    size: int | None = 0  # records appended, as the log's state says (None: unreadable)
    rows: int = 0  # rows found
    heads: int = 0  # signed tree heads stored
    heads_checked: int = 0  # heads whose signature verified and whose root matched
    key_id: str | None = None  # what signatures were checked with (None: not checked)
    findings: list[Finding] = field(default_factory=list)
    more: int = 0  # findings left out past the limit
    anchors: list[Anchor] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def anchor_status(self) -> str:
        if not self.anchors:
            return "absent"
        return "matched" if all(a.result == "matched" for a in self.anchors) else "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "intact" if self.ok else "tampered",
            "ok": self.ok,
            "size": self.size,
            "rows": self.rows,
            "records_checked": self.rows,
            "heads": self.heads,
            "heads_checked": self.heads_checked,
            "key_id": self.key_id,
            "anchor": {
                "status": self.anchor_status,
                "checks": [a.to_json() for a in self.anchors],
                "warning": None if self.anchors else NO_ANCHOR,
            },
            "findings": [f.to_json() for f in self.findings],
            "more_findings": self.more,
        }


def _span(a: int, b: int) -> str:
    return f"seq {a}" if a == b else f"seq {a}..{b}"


def _is_count(value: Any) -> bool:
    """A non-negative integer that fits RFC 6962's uint64 (bool is not one)."""
    return type(value) is int and 0 <= value < 1 << 64


def _show(value: Any) -> str:
    """What a column holds, briefly, for a finding."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    if isinstance(value, str):
        return f"text {value[:40]!r}" + ("…" if len(value) > 40 else "")
    if type(value) in (int, float):
        return f"the number {value!r}"
    return f"a {type(value).__name__} {str(value)[:40]!r}"


class _Verifier:
    """One pass over the records in seq order, O(log n) memory but for a bounded window of
    records found out of place. Reads rows as stored (:meth:`Store.audit_raw`) and checks
    every value's type before using it: a tampered row is a finding, never an exception."""

    WINDOW = 100_000  # how far (in rows) a record may sit from its place and still be found
    LIMIT = 1000  # findings reported
    PAGE = 10_000  # rows read at a time

    def __init__(self, store: Store, key: AuditKey | None, anchors: Sequence[Anchor]) -> None:
        self.store = store
        self.key = key
        self.report = AuditReport(key_id=key.key_id if key else None, anchors=list(anchors))
        self.state_ok = False
        self.size, self.state = 0, b""
        self.frontier: list[bytes] = []
        self.tree_n = 0  # next position (record seq) to put in the tree
        # seq -> (leaf hash, row) out of place; no leaf hash: a row with nothing usable
        self.buffer: dict[int, tuple[bytes | None, int]] = {}
        self.placed: OrderedDict[int, int] = OrderedDict()  # recent record seq -> its row
        self.broken: int | None = None  # first missing record: the tree stops there
        self.confirmed = 0  # the largest size a signed head's root matched at
        self.head_mismatch = 0
        self.frontier_at_size: list[bytes] | None = None
        self.missing: list[list[int]] = []  # [first, last] runs of missing records
        self.beyond: list[int] = []  # [first, last] of records past the recorded size
        self.gaps: list[tuple[int, int]] = []  # runs of missing rows (seq column)
        self.displaced: list[tuple[int, int]] = []  # (row seq, record seq) that differ
        self.heads: list[AuditHead] = []
        self.unreadable = False  # the records could not all be read
        self.expected = 0  # the row seq the next row should have

    def add(self, kind: str, message: str, seq: int | None = None, last: int | None = None):
        if len(self.report.findings) < self.LIMIT:
            self.report.findings.append(Finding(kind, message, seq, last))
        else:
            self.report.more += 1

    def run(self) -> AuditReport:
        self.read_state()
        self.check_heads()
        self.check_anchors()
        self.at_size()
        start = -(1 << 62)
        while True:
            try:
                rows = self.store.audit_raw("audit_log", start, self.PAGE)
            except Exception as exc:  # a column altered so that the rows cannot be read
                self.add("malformed", f"the records from seq {start} on cannot be read: {exc}")
                self.unreadable = True
                break
            if not rows:
                break
            for raw in rows:
                self.take(raw)
            last = rows[-1][0]
            if type(last) is not int:  # not paged by: the seq column holds other things
                break
            start = last + 1
        self.drain(None)
        end = self.size - 1
        if self.state_ok and self.expected <= end and not self.gaps_cover(self.expected, end):
            self.gaps.append((self.expected, end))
        self.finish()
        return self.report

    # -- the state and the signed heads ----------------------------------------------------
    def read_state(self) -> None:
        self.report.size = None  # until it reads as a record count
        try:
            rows = self.store.audit_raw("audit_state")
        except Exception as exc:
            self.add("malformed", f"the log's state (audit_state) cannot be read: {exc}")
            return
        if len(rows) != 1:
            self.add("malformed", f"the log's state (audit_state) has {len(rows)} rows, not 1")
            return
        size, state = rows[0]
        problems = []
        if not _is_count(size):
            problems.append(f"its size holds {_show(size)}, not a record count")
        if not isinstance(state, bytes):
            problems.append(f"its frontier holds {_show(state)}, not bytes")
        if problems:
            self.add("malformed", "the log's state (audit_state): " + "; ".join(problems))
            return
        self.state_ok = True
        self.report.size = size
        self.size, self.state = size, state
        self.frontier_at_size = [] if size == 0 else None

    def read_heads(self) -> list[AuditHead]:
        """The stored heads whose every column holds what a head holds; the others are
        findings (named by their row id, ``hid``)."""
        heads: list[AuditHead] = []
        start = 0
        while True:
            try:
                rows = self.store.audit_raw("audit_heads", start, self.PAGE)
            except Exception as exc:
                self.add("malformed", f"the signed heads from row {start} cannot be read: {exc}")
                return heads
            for hid, size, ts, root, sig, key_id in rows:
                head = self.head_of(hid, size, ts, root, sig, key_id)
                if head is not None:
                    heads.append(head)
            if len(rows) < self.PAGE or type(rows[-1][0]) is not int:
                return heads
            start = rows[-1][0] + 1

    def head_of(self, hid: Any, *columns: Any) -> AuditHead | None:
        size, ts, root, sig, key_id = columns
        problems = [
            f"{name} holds {_show(value)}"
            for name, value, fine in (
                ("tree_size", size, _is_count(size)),
                ("timestamp_ms", ts, _is_count(ts)),
                ("root_hash", root, isinstance(root, bytes) and len(root) == HASH_SIZE),
                ("signature", sig, isinstance(sig, bytes) and len(sig) == 64),
                ("key_id", key_id, isinstance(key_id, str)),
            )
            if not fine
        ]
        if not problems:
            return AuditHead(size, ts, root, sig, key_id)
        at = f" (at size {size})" if _is_count(size) else ""
        self.add("malformed", f"the signed head in row {hid}{at}: " + "; ".join(problems))
        return None

    def check_heads(self) -> None:
        heads = self.read_heads()
        self.report.heads = len(heads)
        for h in heads:
            when = _ms_iso(h.timestamp)
            if self.key is not None and h.key_id != self.key.key_id:
                self.add(
                    "signature",
                    f"the signed head at size {h.tree_size} ({when}) is signed by another key"
                    f" (log id {h.key_id})",
                )
            elif self.key is not None and not verify_head(h, self.key):
                self.add(
                    "signature",
                    f"the signed head at size {h.tree_size} ({when}) does not verify: it was"
                    " modified",
                )
            else:
                self.heads.append(h)
        self.heads.sort(key=lambda h: h.tree_size)
        self.next_head = 0

    def check_anchors(self) -> None:
        """Each anchor's signature, and that the head it holds is still stored."""
        stored = {(h.tree_size, h.timestamp, h.root_hash, h.signature) for h in self.heads}
        for a in self.report.anchors:
            if a.error is not None:
                self.add("anchor", f"{a.source} cannot be used: {a.error}")
                continue
            h = a.head
            if h is None:
                continue
            when = _ms_iso(h.timestamp)
            if self.key is not None and (
                h.key_id != self.key.key_id or not verify_head(h, self.key)
            ):
                a.result = "bad signature"
                self.add(
                    "signature",
                    f"{a.source} (size {h.tree_size}, {when}) does not verify with the log's"
                    " key: it was modified, or is another log's",
                )
                continue
            if (h.tree_size, h.timestamp, h.root_hash, h.signature) not in stored:
                self.add(
                    "deleted",
                    f"the signed head at size {h.tree_size} ({when}) that {a.source} holds is"
                    " no longer in the database: it was deleted (or modified)",
                )

    def at_size(self) -> None:
        """The tree now has ``tree_n`` leaves: check the heads and anchors of that size."""
        n = self.tree_n
        if self.state_ok and n == self.size:
            self.frontier_at_size = list(self.frontier)
        for a in self.report.anchors:  # first: ``confirmed`` is then what heads below n say
            if a.result == "not checked" and a.error is None and a.tree_size == n:
                self.check_anchor(a, n)
        while self.next_head < len(self.heads) and self.heads[self.next_head].tree_size <= n:
            h = self.heads[self.next_head]
            self.next_head += 1
            if h.tree_size < n:
                continue
            if hmac.compare_digest(frontier_root(self.frontier), h.root_hash):
                self.confirmed = n
                self.report.heads_checked += 1
                continue
            self.head_mismatch += 1
            if self.head_mismatch == 1:
                self.add(
                    "rewritten",
                    f"{_span(self.confirmed, n - 1)}: the signed head at size {n}"
                    f" ({_ms_iso(h.timestamp)}) does not match these records: one was"
                    " changed together with its leaf hash, or replaced"
                    + (
                        f" (the head at size {self.confirmed} still matches)"
                        if self.confirmed
                        else ""
                    ),
                    self.confirmed,
                    n - 1,
                )

    def check_anchor(self, a: Anchor, n: int) -> None:
        assert a.root_hash is not None
        if hmac.compare_digest(frontier_root(self.frontier), a.root_hash):
            a.result = "matched"
            return
        a.result = "mismatch"
        first = self.confirmed
        self.add(
            "rewritten",
            f"{_span(first, n - 1) if n else 'the empty log'}: these records do not match"
            f" {a.source}{self.signed(a)}: one was changed together with its leaf hash, or"
            " replaced, and the signed heads with it",
            first if n else None,
            n - 1 if n else None,
        )

    @staticmethod
    def signed(a: Anchor) -> str:
        return f" (signed {_ms_iso(a.head.timestamp)})" if a.head is not None else ""

    # -- records ---------------------------------------------------------------------------
    def take(self, raw: tuple[Any, ...]) -> None:
        """One stored row: its columns checked, then placed."""
        seq, time_, record, leaf = raw
        self.report.rows += 1
        if type(seq) is not int:
            self.add("malformed", f"a row whose seq holds {_show(seq)}, not a position")
            return
        if seq < 0:
            self.add("inserted", f"seq {seq}: a row before the log's first", seq)
            return
        if seq > self.expected:
            self.gaps.append((self.expected, seq - 1))
        self.expected = seq + 1
        problems = [
            f"its {name} holds {_show(value)}, not {what}"
            for name, value, what, fine in (
                ("time", time_, "text", isinstance(time_, str)),
                ("record", record, "text", isinstance(record, str)),
                (
                    "leaf_hash",
                    leaf,
                    f"{HASH_SIZE} bytes",
                    isinstance(leaf, bytes) and len(leaf) == HASH_SIZE,
                ),
            )
            if not fine
        ]
        if problems:
            self.add("malformed", f"seq {seq}: " + "; ".join(problems), seq)
        if isinstance(record, str):
            data = record.encode("utf-8", "surrogatepass")
            if not (isinstance(leaf, bytes) and len(leaf) == HASH_SIZE):
                leaf = leaf_hash(data)  # the record is what counts: the heads check it
            self.row(seq, time_ if isinstance(time_, str) else None, data, leaf)
        else:
            self.place(seq, seq, None)  # nothing to put in the tree: it stops here
        self.drain(seq)

    def row(self, seq: int, time_: str | None, data: bytes, leaf: bytes) -> None:
        claimed = seq
        if not hmac.compare_digest(leaf_hash(data), leaf):
            self.add("edited", f"seq {seq}: the record does not match its leaf hash", seq)
        else:
            try:
                rec = orjson.loads(data)
            except orjson.JSONDecodeError:
                self.add("malformed", f"seq {seq}: the record is not JSON", seq)
                self.place(seq, seq, leaf)  # its hash still goes in the tree
                return
            record_seq = rec.get("seq") if isinstance(rec, dict) else None
            if not _is_count(record_seq):
                self.add("inserted", f"seq {seq}: not a record of this log (no seq)", seq)
                return
            if record_seq != seq:
                claimed = record_seq
                if len(self.displaced) < self.WINDOW:
                    self.displaced.append((seq, record_seq))
            if time_ is not None and rec.get("time") != time_:
                self.add(
                    "edited",
                    f"seq {seq}: the time column ({time_}) is not the record's ({rec.get('time')})",
                    seq,
                )
        if claimed > seq + self.WINDOW:
            self.add("reordered", f"the row at seq {seq} holds record seq {claimed}", seq)
            return
        self.place(claimed, seq, leaf)

    def place(self, claimed: int, seq: int, leaf: bytes | None) -> None:
        if claimed < self.tree_n or claimed in self.buffer:
            first = self.buffer[claimed][1] if claimed in self.buffer else self.placed.get(claimed)
            rows = (
                f"seq {first} and seq {seq} both hold" if first is not None else f"seq {seq} holds"
            )
            self.add("inserted", f"{rows} record seq {claimed}: one of them was inserted", claimed)
            return
        self.buffer[claimed] = (leaf, seq)

    def drain(self, row: int | None) -> None:
        """Put records in the tree in their order; a record not found within the window (or
        by the end) is missing."""
        while self.buffer:
            n = self.tree_n
            got = self.buffer.pop(n, None)
            if got is None:
                if row is not None and row - n <= self.WINDOW:
                    return
                # positions up to the next record held (or the window's edge) are missing:
                # one step, however far a forged seq lies
                upto = min(self.buffer)
                if row is not None:
                    upto = min(upto, row - self.WINDOW)
                self.lose(n, upto - 1)
                self.tree_n = upto
                continue
            leaf, at = got
            self.placed[n] = at
            if len(self.placed) > self.WINDOW:
                self.placed.popitem(last=False)
            if leaf is None:  # a row with nothing usable (reported): the tree stops here
                self.broken = n if self.broken is None else self.broken
            elif self.broken is None:
                frontier_push(self.frontier, n, leaf)
            if self.state_ok and n >= self.size:
                if self.beyond and self.beyond[1] == n - 1:
                    self.beyond[1] = n
                elif not self.beyond:
                    self.beyond = [n, n]
            self.tree_n = n + 1
            if self.broken is None:
                self.at_size()

    def lose(self, a: int, b: int) -> None:
        if self.missing and self.missing[-1][1] == a - 1:
            self.missing[-1][1] = b
        else:
            self.missing.append([a, b])
        if self.broken is None:
            self.broken = a

    def gaps_cover(self, a: int, b: int) -> bool:
        return any(g0 <= a and b <= g1 for g0, g1 in self.gaps)

    # -- the summary -----------------------------------------------------------------------
    def finish(self) -> None:
        if self.unreadable:
            return
        # records missing: their rows gone, or the later rows renumbered over them
        if self.state_ok and self.tree_n < self.size:
            self.missing.append([self.tree_n, self.size - 1])
            self.broken = self.tree_n if self.broken is None else self.broken
        for a, b in self.missing:
            if self.gaps_cover(a, b):
                how = "the row is gone" if a == b else "the rows are gone"
            else:
                how = "the rows after were renumbered to close the gap"
            self.add("deleted", f"{_span(a, b)}: missing ({how})", a, b)
        # signed heads past what is there
        unchecked = self.heads[self.next_head :]
        if unchecked:
            top = unchecked[-1].tree_size
            if self.broken is None:
                self.add(
                    "deleted",
                    f"{_span(self.tree_n, top - 1)}: missing (the signed head at size {top}"
                    " covers them)",
                    self.tree_n,
                    top - 1,
                )
            else:
                log.info("%d signed heads past seq %d not checked", len(unchecked), self.broken)
        self.truncated()
        if self.beyond:
            a, b = self.beyond
            self.add(
                "inserted",
                f"{_span(a, b)}: past the log's recorded size of {self.size} (not appended"
                " through the log)",
                a,
                b,
            )
        self.classify_displaced()
        self.check_state()

    def truncated(self) -> None:
        """An anchor past the log's last record: the log was cut short (the records past
        it deleted, and the state and heads that said so rewritten or deleted too)."""
        for a in self.report.anchors:
            if a.result != "not checked" or a.error is not None or a.tree_size is None:
                continue
            if self.tree_n >= a.tree_size:  # reached, but past a break in the log
                a.result = f"not checked (the log is broken at seq {self.broken})"
                continue
            a.result = "truncated"
            told = [f.last for f in self.report.findings if f.kind == "deleted" and f.last]
            first = max([self.tree_n, *(t + 1 for t in told if t >= self.tree_n)])
            if first <= a.tree_size - 1:
                self.add(
                    "deleted",
                    f"{_span(first, a.tree_size - 1)}: missing: the log ends at"
                    f" {self.tree_n:,} records but {a.source}{self.signed(a)} covers"
                    f" {a.tree_size:,} (the log was truncated)",
                    first,
                    a.tree_size - 1,
                )

    def check_state(self) -> None:
        """The running state the appends kept: bounds changes no signed head covers yet."""
        if not (
            self.state_ok
            and self.broken is None
            and self.frontier_at_size is not None
            and not self.head_mismatch
        ):
            return
        try:
            stored = unpack_frontier(self.state, self.size)
        except AuditError as exc:
            self.add("rewritten", str(exc))
            return
        start, i = 0, 0
        for bit in reversed(range(self.size.bit_length())):
            if not self.size >> bit & 1:
                continue
            width = 1 << bit
            if not hmac.compare_digest(stored[i], self.frontier_at_size[i]):
                self.add(
                    "rewritten",
                    f"{_span(start, start + width - 1)}: these records do not match the"
                    " log's running state: one was changed together with its leaf hash,"
                    " or replaced (no signed head covers it yet)",
                    start,
                    start + width - 1,
                )
            start += width
            i += 1

    def classify_displaced(self) -> None:
        where = dict(self.displaced)
        done: set[int] = set()
        runs: list[list[tuple[int, int]]] = []
        for row, rec in self.displaced:
            if where.get(rec) == row and rec != row:
                if row < rec:
                    self.add("reordered", f"seq {row} and seq {rec} were swapped", row, rec)
                done.add(row)
                continue
            if (
                runs
                and runs[-1][-1][0] == row - 1
                and runs[-1][-1][0] - runs[-1][-1][1] == row - rec
            ):
                runs[-1].append((row, rec))
            else:
                runs.append([(row, rec)])
        for run in runs:
            (r0, c0), (r1, _) = run[0], run[-1]
            d = r0 - c0
            if len(run) > 1 and d > 0:
                self.add(
                    "inserted",
                    f"{_span(r0, r1)}: each row holds the record {d} before it: {d} row(s)"
                    f" were inserted at seq {r0 - d} or before, and the later ones renumbered",
                    r0 - d,
                    r1,
                )
            elif len(run) > 1 and d < 0 and self.missing:
                continue  # the deletion the later rows were renumbered over: reported
            else:
                for row, rec in run:
                    self.add("reordered", f"the row at seq {row} holds record seq {rec}", row)


def _ms_iso(ms: int) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
    except (OverflowError, ValueError, OSError):  # past what a calendar shows
        return f"{ms} ms after 1970"


def verify_log(
    store: Store, key: AuditKey | None = None, anchors: Sequence[Anchor] = ()
) -> AuditReport:
    """Recompute the log from its stored records and check it: every column's type, every
    leaf hash, every seq, every signed head (signature with ``key``, when given, and root),
    the running state and each anchor (the log must still reach its size, with its root).
    Each finding names the records concerned; nothing a row holds makes it raise."""
    return _Verifier(store, key, anchors).run()


# ---------------------------------------------------------------------- serving and signing


async def run_signer(log_: AuditLog, interval_s: float) -> None:
    """Sign a tree head now and every ``interval_s`` seconds (when the log grew); for the
    app's lifespan. Logs failures and keeps going."""
    while True:
        try:
            await asyncio.to_thread(log_.sign_head)
        except Exception:
            log.exception("signing an audit tree head failed; retrying in %ss", interval_s)
        await asyncio.sleep(interval_s)


MAX_ENTRIES = 1000  # per /audit/entries page


def routes(audit: AuditLog | None = None) -> list[Any]:
    """``/audit/head``, ``/audit/key``, ``/audit/entries``, ``/audit/proof/inclusion`` and
    ``/audit/proof/consistency`` (see docs/security.md). The log is ``audit``, else the
    app's ``app.state.audit``."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from cityos.hub.api.common import endpoint, json_response
    from cityos.hub.errors import BadRequestData, ResourceNotFound

    def log_of(request: Request) -> AuditLog:
        return audit if audit is not None else request.app.state.audit

    def number(request: Request, name: str, default: int | None = None) -> int:
        """A non-negative integer parameter; -1 when absent and ``default`` is -1."""
        raw = request.query_params.get(name)
        if raw is None:
            if default is None:
                raise BadRequestData(f"{name} is required")
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequestData(f"{name} must be an integer, not {raw!r}") from None
        if value < 0:
            raise BadRequestData(f"{name} must not be negative")
        return value

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except AuditError as exc:
            raise BadRequestData(str(exc)) from exc

    def signed_size(lg: AuditLog) -> int:
        head = lg.latest_head()
        return head.tree_size if head is not None else lg.size()

    @endpoint
    async def get_head(request: Request) -> Response:
        head = await asyncio.to_thread(log_of(request).latest_head)
        if head is None:
            raise ResourceNotFound("the audit log has no signed tree head yet")
        return json_response(head_json(head))

    @endpoint
    async def get_key(request: Request) -> Response:
        key = await run(log_of(request).public_key)
        return json_response({"log_id": key.key_id, "public_key": key.public_pem()})

    @endpoint
    async def get_entries(request: Request) -> Response:
        lg = log_of(request)
        start = number(request, "start")
        end = number(request, "end", start + 100)
        if end < start:
            raise BadRequestData("end must not be before start")
        end = min(end, start + MAX_ENTRIES)  # a shorter page, as CT logs answer
        rows = await run(lg.entries, start, end)
        return json_response(
            {
                "entries": [
                    {
                        "seq": e.seq,
                        "time": e.time,
                        "record": e.record,
                        "leaf_hash": _b64(e.leaf_hash),
                    }
                    for e in rows
                ]
            }
        )

    @endpoint
    async def get_inclusion(request: Request) -> Response:
        lg = log_of(request)
        index = number(request, "index")
        asked = number(request, "size", -1)

        def prove() -> dict[str, Any]:
            size = asked if asked >= 0 else signed_size(lg)
            path = lg.inclusion_proof(index, size)
            leaf = lg.store.audit_leaf_hashes(index, index + 1)
            return {
                "leaf_index": index,
                "tree_size": size,
                "leaf_hash": _b64(leaf[0]) if leaf else None,
                "root_hash": _b64(lg.root(size)),
                "inclusion_path": [_b64(h) for h in path],
            }

        return json_response(await run(prove))

    @endpoint
    async def get_consistency(request: Request) -> Response:
        lg = log_of(request)
        first = number(request, "first")
        asked = number(request, "second", -1)

        def prove() -> dict[str, Any]:
            second = asked if asked >= 0 else signed_size(lg)
            path = lg.consistency_proof(first, second)
            return {"first": first, "second": second, "consistency": [_b64(h) for h in path]}

        return json_response(await run(prove))

    return [
        Route("/audit/head", get_head, methods=["GET"]),
        Route("/audit/key", get_key, methods=["GET"]),
        Route("/audit/entries", get_entries, methods=["GET"]),
        Route("/audit/proof/inclusion", get_inclusion, methods=["GET"]),
        Route("/audit/proof/consistency", get_consistency, methods=["GET"]),
    ]
