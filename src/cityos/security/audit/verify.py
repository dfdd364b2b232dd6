"""Verifying a stored log from its rows (``cityos audit verify``): every column's type,
every leaf hash, every seq, every signed head, the log's state and each anchor; each
finding names the records concerned."""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from cityos.hub.store.audit import (
    AuditHead,
    AuditStore,
    HasAuditStore,
    audit_store_for,
)
from cityos.security.audit.anchor import read_anchor
from cityos.security.audit.errors import AuditError, InvalidCheckpoint
from cityos.security.audit.keys import (
    AuditKey,
    _is_count,
    verify_head,
)
from cityos.security.audit.merkle import (
    HASH_SIZE,
    frontier_push,
    frontier_root,
    leaf_hash,
    unpack_frontier,
)

log = logging.getLogger("cityos.audit")


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
    records found out of place. Reads rows as stored (:meth:`AuditStore.raw`) and checks
    every value's type before using it: a tampered row is a finding, never an exception."""

    WINDOW = 100_000  # how far (in rows) a record may sit from its place and still be found
    LIMIT = 1000  # findings reported
    PAGE = 10_000  # rows read at a time

    def __init__(self, store: AuditStore, key: AuditKey | None, anchors: Sequence[Anchor]) -> None:
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
                rows = self.store.raw("audit_log", start, self.PAGE)
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
            rows = self.store.raw("audit_state")
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
                rows = self.store.raw("audit_heads", start, self.PAGE)
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
    store: AuditStore | HasAuditStore, key: AuditKey | None = None, anchors: Sequence[Anchor] = ()
) -> AuditReport:
    """Recompute the log from its stored records and check it: every column's type, every
    leaf hash, every seq, every signed head (signature with ``key``, when given, and root),
    the running state and each anchor (the log must still reach its size, with its root).
    Each finding names the records concerned; nothing a row holds makes it raise."""
    return _Verifier(audit_store_for(store), key, anchors).run()
