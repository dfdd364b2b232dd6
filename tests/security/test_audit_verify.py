"""`cityos audit verify` against someone who can write to the database (issue 11, item 6):
the anchor kept outside it catches a log truncated or rewritten together with its signed
heads, and a row holding what the log never writes there is a finding, never a traceback.
Every test runs on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityos.hub.store.base import Store
from cityos.hub.store.sqlite import SqliteStore
from cityos.security import audit as a
from cityos.security.audit import Anchor, AuditLog

from .test_audit_store import _cli, _fill, _forge, _output, _record, _sql


@pytest.fixture
def key_path(tmp_path, monkeypatch):
    path = tmp_path / "audit-key.pem"
    monkeypatch.setenv("CITYOS_AUDIT_KEY_PATH", str(path))
    return path


@pytest.fixture
def audit(store: Store, key_path) -> AuditLog:
    return AuditLog(store, key_path=key_path)


def _anchor_file(key_path: Path, store: Store) -> Path:
    """The anchor the log of ``store`` keeps beside ``key_path`` (one per database)."""
    path = a.anchor_path_for(key_path, None, a.database_identity(store))
    assert path is not None
    return path


def _report(store: Store, monkeypatch, *args: str) -> dict[str, Any]:
    result = _cli(store, monkeypatch, "verify", "--json", *args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return json.loads(result.stdout)


def _tampered(store: Store, monkeypatch, *args: str) -> tuple[dict[str, Any], str]:
    """Exit 1, TAMPERED, no traceback; the JSON report and the text."""
    result = _cli(store, monkeypatch, "verify", *args)
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert result.exit_code == 1, _output(result)
    text = _output(result)
    assert "TAMPERED" in text and "Traceback" not in text
    report = _report(store, monkeypatch, *args)
    assert report["status"] == "tampered" and report["ok"] is False
    return report, text


def _found(report: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(f["kind"], f["seq"], f["last"]) for f in report["findings"]]


def _cut_to(store: Store, keep: int) -> None:
    """Truncate the log to ``keep`` records the way someone who knows the format would: the
    rows, the signed heads past them, and the log's state recomputed to match."""
    frontier: list[bytes] = []
    for i, h in enumerate(store.audit.leaf_hashes(0, keep)):
        a.frontier_push(frontier, i, h)
    _sql(store, "DELETE FROM audit_log WHERE seq >= %s", (keep,))
    _sql(store, "DELETE FROM audit_heads WHERE tree_size > %s", (keep,))
    _sql(
        store, "UPDATE audit_state SET size = %s, frontier = %s", (keep, a.pack_frontier(frontier))
    )


def _rewrite(store: Store, seq: int) -> None:
    """Replace record ``seq`` (with its leaf hash) and recompute the log's state."""
    _, time_, record, leaf = _forge(seq, outcome="ok", actor="nobody")
    _sql(
        store,
        "UPDATE audit_log SET time = %s, record = %s, leaf_hash = %s WHERE seq = %s",
        (time_, record, leaf, seq),
    )
    size = store.audit.state()[0]
    frontier: list[bytes] = []
    for i, h in enumerate(store.audit.leaf_hashes(0, size)):
        a.frontier_push(frontier, i, h)
    _sql(store, "UPDATE audit_state SET frontier = %s", (a.pack_frontier(frontier),))


# -- the anchor ------------------------------------------------------------------------------


def test_each_signed_head_is_anchored_in_a_file_of_mode_0600(
    audit: AuditLog, store: Store, key_path, monkeypatch
) -> None:
    path = _anchor_file(key_path, store)
    assert audit.anchor_path == path
    _fill(audit, 30, heads=(10, 30))
    head = audit.latest_head()
    assert head is not None and head.tree_size == 30
    assert json.loads(path.read_text()) == a.anchor_json(head)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir() if "anchor" in p.name) == [path.name]
    # the anchor never goes back (another worker signing an older head)
    older = store.audit.heads()[0]
    assert not a.write_anchor(path, older)
    assert a.read_anchor(path) == head
    # `cityos audit head --json` prints it, to publish; verify --anchor reads it back
    result = _cli(store, monkeypatch, "head", "--json")
    assert result.exit_code == 0, _output(result)
    published = json.loads(result.stdout)
    assert {k: published[k] for k in a.anchor_json(head)} == a.anchor_json(head)
    copy = path.with_name("published.json")
    copy.write_text(result.stdout)
    report = _report(store, monkeypatch, "--anchor", str(copy))
    assert report["status"] == "intact" and report["anchor"]["status"] == "matched"


def test_a_setting_moves_the_anchor(store: Store, key_path, tmp_path, monkeypatch) -> None:
    where = tmp_path / "elsewhere" / "anchor.json"
    monkeypatch.setenv("CITYOS_AUDIT_ANCHOR_PATH", str(where))
    result = _cli(store, monkeypatch, "head", "--sign", "--json")
    assert result.exit_code == 0, _output(result)
    assert a.read_anchor(where).tree_size == 0
    assert not _anchor_file(key_path, store).exists()


def test_run_signer_anchors_what_it_signs(audit: AuditLog, key_path) -> None:
    import asyncio
    import contextlib

    async def main() -> None:
        task = asyncio.create_task(a.run_signer(audit, 0.05))
        await asyncio.sleep(0.2)
        audit.append(_record(0))
        for _ in range(100):
            await asyncio.sleep(0.05)
            with contextlib.suppress(FileNotFoundError):
                if a.read_anchor(_anchor_file(key_path, audit.store)).tree_size == 1:
                    break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert a.read_anchor(_anchor_file(key_path, audit.store)) == audit.latest_head()


# -- truncated, rewritten, heads deleted ---------------------------------------------------


@pytest.mark.parametrize("heads", ["deleted past the cut", "all deleted"])
def test_a_truncated_log_is_tampered(
    audit: AuditLog, store: Store, monkeypatch, heads: str
) -> None:
    _fill(audit, 40, heads=(20, 40))
    _cut_to(store, 30)
    if heads == "all deleted":
        _sql(store, "DELETE FROM audit_heads")
    report, text = _tampered(store, monkeypatch)
    assert ("deleted", 30, 39) in _found(report)
    assert "seq 30..39: missing" in text and "(the log was truncated)" in text
    assert "the signed head at size 40" in text and "no longer in the database" in text
    assert report["anchor"]["checks"][0]["result"] == "truncated"
    # and the log will not be signed (blessed) as it is now; the anchor stays as evidence
    before = _anchor_file(audit.key_path, audit.store).read_bytes()
    with pytest.raises(a.AuditError, match="fewer than its anchor"):
        audit.sign_head()
    assert _anchor_file(audit.key_path, audit.store).read_bytes() == before
    assert _cli(store, monkeypatch, "head", "--sign").exit_code == 1


def test_a_log_cut_to_nothing_is_tampered(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 12, heads=(12,))
    _sql(store, "DELETE FROM audit_log")
    _sql(store, "DELETE FROM audit_heads")
    _sql(store, "UPDATE audit_state SET size = 0, frontier = %s", (b"",))
    report, _ = _tampered(store, monkeypatch)
    assert ("deleted", 0, 11) in _found(report)


@pytest.mark.parametrize("heads", ["re-signed", "deleted"])
def test_a_record_rewritten_with_the_heads_is_tampered(
    audit: AuditLog, store: Store, monkeypatch, heads: str
) -> None:
    _fill(audit, 40, heads=(8, 40))
    _rewrite(store, 17)
    _sql(store, "DELETE FROM audit_heads WHERE tree_size > 8")
    if heads == "re-signed":  # someone who also holds the signing key
        AuditLog(store, key=audit.key).sign_head(force=True)
        assert a.verify_log(store, audit.key).ok  # the database alone cannot tell
    report, text = _tampered(store, monkeypatch)
    assert ("rewritten", 8, 39) in _found(report)
    assert "do not match the anchor" in text
    assert report["anchor"]["checks"][0]["result"] == "mismatch"
    with pytest.raises(a.AuditError, match="rewritten"):
        audit.sign_head(force=True)


def test_a_deleted_anchored_head_is_tampered(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 20, heads=(10, 20))
    _sql(store, "DELETE FROM audit_heads WHERE tree_size = 20")
    report, text = _tampered(store, monkeypatch)
    assert [f["kind"] for f in report["findings"]] == ["deleted"]
    assert "the signed head at size 20" in text and "no longer in the database" in text


def test_a_modified_anchor_does_not_verify(
    audit: AuditLog, store: Store, key_path, monkeypatch
) -> None:
    _fill(audit, 20, heads=(20,))
    path = _anchor_file(key_path, store)
    body = json.loads(path.read_text())
    path.write_text(json.dumps({**body, "tree_size": 19}))
    report, text = _tampered(store, monkeypatch)
    assert "signature" in [f["kind"] for f in report["findings"]]
    assert "does not verify with the log's key" in text


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[1, 2]", b'{"tree_size": "x"}', b'{"tree_size": 5, "timestamp": 1}'],
)
def test_an_unreadable_anchor_is_a_finding(
    audit: AuditLog, store: Store, key_path, monkeypatch, content: bytes
) -> None:
    _fill(audit, 5, heads=(5,))
    _anchor_file(key_path, store).write_bytes(content)
    report, text = _tampered(store, monkeypatch)
    assert [f["kind"] for f in report["findings"]] == ["anchor"]
    assert "cannot be used" in text
    with pytest.raises(a.AuditError):  # nor is it overwritten: it is evidence
        audit.sign_head(force=True)
    assert _anchor_file(key_path, store).read_bytes() == content


def test_without_an_anchor_verify_says_so_and_passes(
    audit: AuditLog, store: Store, key_path, monkeypatch
) -> None:
    _fill(audit, 20, heads=(20,))
    _anchor_file(key_path, store).unlink()
    result = _cli(store, monkeypatch, "verify")
    assert result.exit_code == 0, _output(result)
    text = _output(result)
    assert "intact: 20 records" in text
    assert "warning: no anchor" in text and "only as strong as the database" in text
    report = _report(store, monkeypatch)
    assert report["status"] == "intact" and report["records_checked"] == 20
    assert report["heads"] == report["heads_checked"] == 1
    assert report["anchor"]["status"] == "absent" and report["anchor"]["warning"]
    # ... and cannot see a truncation that took the heads with it
    _cut_to(store, 15)
    assert _cli(store, monkeypatch, "verify").exit_code == 0
    # an explicit anchor that is not there cannot be checked
    missing = key_path.with_name("nowhere.json")
    assert _cli(store, monkeypatch, "verify", "--anchor", str(missing)).exit_code == 2


def test_the_expected_size_and_root_are_checked(
    audit: AuditLog, store: Store, key_path, monkeypatch
) -> None:
    _fill(audit, 40, heads=(40,))
    head = audit.latest_head()
    assert head is not None
    _anchor_file(key_path, store).unlink()
    expect = ["--expect-size", "40", "--expect-root", head.root_hash.hex()]
    report = _report(store, monkeypatch, *expect)
    assert report["status"] == "intact" and report["anchor"]["status"] == "matched"
    _fill(audit, 5)  # the log grew since: fine
    assert _cli(store, monkeypatch, "verify", *expect).exit_code == 0
    wrong = ["--expect-size", "40", "--expect-root", audit.root(39).hex()]
    report, _ = _tampered(store, monkeypatch, *wrong)
    assert ("rewritten", 0, 39) in _found(report)
    _cut_to(store, 33)
    report, _ = _tampered(store, monkeypatch, *expect)
    assert ("deleted", 33, 39) in _found(report)
    for bad in (
        ["--expect-size", "40"],
        ["--expect-root", head.root_hash.hex()],
        ["--expect-size", "40", "--expect-root", "zz"],
        ["--expect-size", "40", "--expect-root", "abcd"],
        ["--expect-size", "-1", "--expect-root", head.root_hash.hex()],
    ):
        result = _cli(store, monkeypatch, "verify", *bad)
        assert result.exit_code == 2, (bad, _output(result))


def test_a_row_at_a_far_seq_does_not_hang_verify(audit: AuditLog, store: Store) -> None:
    _fill(audit, 10, heads=(10,))
    far = 10**12
    _sql(
        store,
        "INSERT INTO audit_log(seq, time, record, leaf_hash) VALUES (%s, %s, %s, %s)",
        _forge(far),
    )
    report = a.verify_log(store, audit.key, [Anchor.from_file(audit.anchor_path)])
    assert ("inserted", far, far) in [(f.kind, f.seq, f.last) for f in report.findings]


# -- malformed rows: findings, never tracebacks -------------------------------------------------

# (what, SQLite statements, PostgreSQL statements, the finding's kind, its seq, words in it)
_LOG = "UPDATE audit_log SET {} WHERE seq = '7'"  # quoted: the column may be text
_HEAD = "UPDATE audit_heads SET {} WHERE tree_size = '10'"
_STATE = "UPDATE audit_state SET {}"
_LOOSE_LOG = [  # SQLite: the table rebuilt without its constraints (as through a side table)
    "CREATE TABLE side AS SELECT * FROM audit_log",
    "DROP TABLE audit_log",
    "ALTER TABLE side RENAME TO audit_log",
]
CORRUPTIONS = [
    ("leaf hash as text", [_LOG.format("leaf_hash = 'zz'")],
     ["ALTER TABLE audit_log ALTER COLUMN leaf_hash TYPE text USING encode(leaf_hash, 'hex')",
      _LOG.format("leaf_hash = 'zz'")], "malformed", 7, "leaf_hash holds text 'zz'"),
    ("leaf hash as a number", [_LOG.format("leaf_hash = 10000000000")],
     ["ALTER TABLE audit_log ALTER COLUMN leaf_hash TYPE numeric USING 1",
      _LOG.format("leaf_hash = 10000000000")], "malformed", 7, "leaf_hash holds"),
    ("leaf hash too short", [_LOG.format("leaf_hash = x'00ff'")],
     [_LOG.format("leaf_hash = '\\x00ff'::bytea")], "malformed", 7, "leaf_hash holds 2 bytes"),
    ("leaf hash NULL", [*_LOOSE_LOG, _LOG.format("leaf_hash = NULL")],
     ["ALTER TABLE audit_log ALTER COLUMN leaf_hash DROP NOT NULL",
      _LOG.format("leaf_hash = NULL")], "malformed", 7, "leaf_hash holds NULL"),
    ("record as bytes", [_LOG.format("record = x'ff00'")],
     ["ALTER TABLE audit_log ALTER COLUMN record TYPE bytea USING convert_to(record, 'UTF8')",
      _LOG.format("record = '\\xff00'::bytea")], "malformed", 7, "record holds"),
    ("record not UTF-8", [_LOG.format("record = CAST(x'7bff' AS TEXT)")],
     [_LOG.format("record = 'not json'")], None, 7, "seq 7"),
    ("record NULL", [*_LOOSE_LOG, _LOG.format("record = NULL")],
     ["ALTER TABLE audit_log ALTER COLUMN record DROP NOT NULL",
      _LOG.format("record = NULL")], "malformed", 7, "record holds NULL"),
    ("time as bytes", [_LOG.format("time = x'01'")],
     ["ALTER TABLE audit_log ALTER COLUMN time DROP NOT NULL", _LOG.format("time = NULL")],
     "malformed", 7, "time holds"),
    ("state size as text", [_STATE.format("size = 'abc'")],
     ["ALTER TABLE audit_state ALTER COLUMN size TYPE text", _STATE.format("size = 'abc'")],
     "malformed", None, "size holds text 'abc'"),
    ("state frontier as a number", [_STATE.format("frontier = 12")],
     ["ALTER TABLE audit_state ALTER COLUMN frontier DROP NOT NULL",
      _STATE.format("frontier = NULL")], "malformed", None, "frontier holds"),
    ("state row gone", ["DELETE FROM audit_state"], ["DELETE FROM audit_state"],
     "malformed", None, "has 0 rows"),
    ("head size as text", [_HEAD.format("tree_size = 'ten'")],
     ["ALTER TABLE audit_heads ALTER COLUMN tree_size TYPE text",
      _HEAD.format("tree_size = 'ten'")], "malformed", None, "tree_size holds text 'ten'"),
    ("head time as a real", [_HEAD.format("timestamp_ms = 1.5")],
     ["ALTER TABLE audit_heads ALTER COLUMN timestamp_ms TYPE numeric",
      _HEAD.format("timestamp_ms = 1.5")], "malformed", None, "timestamp_ms holds"),
    ("head time past 2**64", [_HEAD.format("timestamp_ms = 9223372036854775807")],
     [_HEAD.format("timestamp_ms = 9223372036854775807")], "signature", None, "does not verify"),
    ("head root as bad hex text", [_HEAD.format("root_hash = 'zz'")],
     ["ALTER TABLE audit_heads ALTER COLUMN root_hash TYPE text USING encode(root_hash, 'hex')",
      _HEAD.format("root_hash = 'zz'")], "malformed", None, "root_hash holds text 'zz'"),
    ("head signature short", [_HEAD.format("signature = x'00'")],
     [_HEAD.format("signature = '\\x00'::bytea")], "malformed", None, "signature holds 1 bytes"),
    ("head key id as bytes", [_HEAD.format("key_id = x'ff'")],
     ["ALTER TABLE audit_heads ALTER COLUMN key_id DROP NOT NULL", _HEAD.format("key_id = NULL")],
     "malformed", None, "key_id holds"),
    ("seq as text", [*_LOOSE_LOG, _LOG.format("seq = 'seven'")],
     ["ALTER TABLE audit_log ALTER COLUMN seq TYPE text", _LOG.format("seq = 'seven'")],
     "malformed", None, ""),
]  # fmt: skip


@pytest.mark.parametrize("case", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_malformed_row_is_a_finding(
    audit: AuditLog, store: Store, monkeypatch, case: tuple[Any, ...]
) -> None:
    _, lite, pg, kind, seq, words = case
    _fill(audit, 20, heads=(10, 20))
    for statement in lite if store.engine == "sqlite" else pg:
        _sql(store, statement)
    report, text = _tampered(store, monkeypatch)
    if kind is not None:
        assert kind in [f["kind"] for f in report["findings"]], text
        hit = [f for f in report["findings"] if f["kind"] == kind]
        assert any(words in f["message"] for f in hit), text
        if seq is not None:
            assert seq in [f["seq"] for f in hit]
    else:
        assert any(f["seq"] == seq for f in report["findings"]), text
    assert words in text


_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=70),
)
_COLUMNS = (
    [("audit_log", "seq = 3", c) for c in ("time", "record", "leaf_hash")]
    + [
        ("audit_heads", "tree_size = 4", c)
        for c in ("tree_size", "timestamp_ms", "root_hash", "signature", "key_id")
    ]
    + [("audit_state", "1 = 1", c) for c in ("size", "frontier")]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(_COLUMNS), value=_VALUES)
def test_any_value_in_any_column_is_reported_never_raised(
    where: tuple[str, str, str], value: Any
) -> None:
    """SQLite keeps any value in any column: whatever is put there, verify reports."""
    store = SqliteStore(":memory:")
    store.migrate()
    try:
        key = a.AuditKey.generate()
        audit = AuditLog(store, key=key)
        _fill(audit, 8, heads=(4, 8))
        table, row, column = where
        conn = store._conn  # type: ignore[attr-defined]
        for statement in _loosened(table):
            conn.execute(statement)
        stored = f"SELECT typeof({column}), CAST({column} AS BLOB) FROM {table} WHERE {row}"
        before = conn.execute(stored).fetchone()
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {row}", (value,))
        same = conn.execute(stored).fetchone() == before  # (after the column's affinity)
        report = a.verify_log(store, key)  # never raises
        assert report.ok == same, [f.message for f in report.findings]
        json.dumps(report.to_json())
    finally:
        store.close()


def _loosened(table: str) -> list[str]:
    """The table rebuilt without NOT NULL (its rows kept), as someone with the file could."""
    return [
        f"CREATE TABLE side AS SELECT * FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE side RENAME TO {table}",
    ]


def test_the_json_report_has_what_scripts_read(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 12, heads=(12,))
    report = _report(store, monkeypatch)
    assert report["status"] == "intact" and report["findings"] == []
    assert report["records_checked"] == 12 and report["heads_checked"] == 1
    check = report["anchor"]["checks"][0]
    assert check["result"] == "matched" and check["tree_size"] == 12
    assert check["root_hash"] == audit.root(12).hex()
    assert os.path.basename(check["source"].split()[-1]).startswith("audit-anchor-")


def test_each_database_keeps_its_own_anchor_beside_the_shared_key(tmp_path, key_path) -> None:
    """Two databases signed with one key (a city's SQLite trial, then its PostgreSQL):
    each log is judged by its own anchor, so a new, shorter log is not taken for a
    truncated one, and the first log's anchor still catches its own truncation."""
    stores = [SqliteStore(tmp_path / f"{name}.db") for name in ("first", "second")]
    for store in stores:
        store.migrate()
    first, second = (AuditLog(store, key_path=key_path) for store in stores)
    first.append_many([_record(n) for n in range(5)])
    first.sign_head(force=True)
    second.append_many([_record(0)])
    second.sign_head(force=True)  # refused if judged by the first log's anchor
    assert first.anchor_path != second.anchor_path
    assert a.read_anchor(first.anchor_path).tree_size == 5
    assert a.read_anchor(second.anchor_path).tree_size == 1
