"""The audit log on SQLite and PostgreSQL: appends, proofs, signed heads, the API, and
`cityos audit verify` naming what was tampered with in the database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cityos.cli import app
from cityos.hub.store.base import Store
from cityos.security import audit as a
from cityos.security.audit import AuditKey, AuditLog

runner = CliRunner()


def _record(i: int) -> dict[str, Any]:
    return {
        "actor": f"user-{i % 7}",
        "tenant": "" if i % 3 else "district-1",
        "action": "entity.update",
        "target": f"urn:ngsi-ld:TrafficFlowObserved:{i}",
        "outcome": "denied" if i % 11 == 0 else "ok",
    }


@pytest.fixture
def key_path(tmp_path, monkeypatch):
    path = tmp_path / "audit-key.pem"
    monkeypatch.setenv("CITYOS_AUDIT_KEY_PATH", str(path))
    return path


@pytest.fixture
def audit(store: Store, key_path) -> AuditLog:
    return AuditLog(store, key_path=key_path)


def _fill(audit: AuditLog, n: int, heads: tuple[int, ...] = ()) -> None:
    for i in range(n):
        audit.append(_record(i))
        if i + 1 in heads:
            audit.sign_head()


def _sql(store: Store, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Tamper with the database directly, as someone with access to it would."""
    if store.engine == "sqlite":
        store._conn.execute(statement.replace("%s", "?"), params)  # type: ignore[attr-defined]
    else:
        with store._pool.connection() as conn:  # type: ignore[attr-defined]
            conn.execute(statement, params)


def _forge(seq: int, **fields: Any) -> tuple[int, str, str, bytes]:
    """A record as the log would have written it (the attacker knows the format)."""
    body = {**_record(seq), "seq": seq, "time": "2026-11-30T01:00:00.000000Z", **fields}
    text = a.canonical(body)
    return seq, body["time"], text.decode(), a.leaf_hash(text)


def _cli(store: Store, monkeypatch, *args: str):
    if store.engine == "sqlite":
        url = f"sqlite:///{store.path}"  # type: ignore[attr-defined]
    else:
        from cityos.hub.store.postgres import PostgresStore

        url = store.url  # type: ignore[attr-defined]
        schema = store.schema  # type: ignore[attr-defined]
        monkeypatch.setattr(
            "cityos.hub.store.open_store", lambda u, **kw: PostgresStore(u, schema=schema)
        )
    return runner.invoke(app, ["audit", *args, "-d", url])


def _output(result) -> str:
    out = result.stdout
    with contextlib.suppress(ValueError):
        out += result.stderr
    return " ".join(out.split())  # rich may wrap


# -- appending and proving -----------------------------------------------------------------


def test_appends_get_consecutive_seqs_and_proofs_verify(audit: AuditLog, store: Store) -> None:
    _fill(audit, 300, heads=(1, 100, 256))
    assert audit.append_many([_record(i) for i in range(300, 600)]) == list(range(300, 600))
    head = audit.sign_head()
    assert head.tree_size == audit.size() == 600
    leaves = store.audit.leaf_hashes(0, 600)
    assert audit.root() == a.root_of(leaves) == head.root_hash
    entries = store.audit.entries(0, 600)
    assert [e.seq for e in entries] == list(range(600))
    first = json.loads(entries[5].record)
    assert first["seq"] == 5 and first["action"] == "entity.update" and first["time"]
    assert a.leaf_hash(entries[5].record.encode()) == entries[5].leaf_hash
    heads = store.audit.heads()
    assert [h.tree_size for h in heads] == [1, 100, 256, 600]
    key = AuditKey.from_pem(audit.key.public_pem())
    assert all(a.verify_head(h, key) for h in heads)
    for index in (0, 1, 255, 256, 299, 511, 512, 599):
        path = audit.inclusion_proof(index, 600)
        assert a.verify_inclusion(leaves[index], index, 600, path, head.root_hash)
    for old in heads[:-1]:
        path = audit.consistency_proof(old.tree_size, 600)
        assert a.verify_consistency(old.tree_size, 600, old.root_hash, head.root_hash, path)
        assert audit.root(old.tree_size) == old.root_hash
    # a second log object (another worker) computes the same from the store
    other = AuditLog(store, key_path=audit.key_path)
    assert other.inclusion_proof(300, 600) == audit.inclusion_proof(300, 600)
    assert a.verify_log(store, key).ok


def test_sign_head_only_when_the_log_grew(audit: AuditLog, store: Store) -> None:
    empty = audit.sign_head()
    assert empty.tree_size == 0 and empty.root_hash == a.EMPTY_ROOT
    assert audit.sign_head() == empty
    audit.append(_record(0))
    assert audit.sign_head().tree_size == 1
    assert audit.sign_head(force=True).tree_size == 1
    assert len(store.audit.heads()) == 3


def test_records_are_checked(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match="action"):
        audit.append({"actor": "x"})
    with pytest.raises(ValueError, match="seq"):
        audit.append({"action": "x", "seq": 3})
    with pytest.raises(a.AuditError):
        audit.inclusion_proof(0)
    assert audit.append({"action": "login", "time": "2026-11-30T01:00:00.000000Z"}) == 0
    entry = audit.entries(0, 1)[0]
    assert entry.time == "2026-11-30T01:00:00.000000Z"
    assert json.loads(entry.record) == {
        "action": "login",
        "actor": None,
        "outcome": None,
        "seq": 0,
        "target": None,
        "tenant": None,
        "time": "2026-11-30T01:00:00.000000Z",
    }


def test_concurrent_appenders_leave_no_gaps(audit: AuditLog, store: Store) -> None:
    def work(t: int) -> None:
        for i in range(40):
            audit.append(_record(t * 100 + i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.seq for e in store.audit.entries(0)] == list(range(160))
    audit.sign_head()
    assert a.verify_log(store, audit.key).ok


# -- cityos audit verify: tampering named ------------------------------------------------------


def test_verify_passes_on_an_intact_log(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 50, heads=(10, 50))
    result = _cli(store, monkeypatch, "verify")
    assert result.exit_code == 0, _output(result)
    assert "intact: 50 records, 2 signed tree heads verified" in _output(result)
    result = _cli(store, monkeypatch, "verify", "--json")
    assert json.loads(result.stdout)["ok"] is True


def _tampered(store: Store, monkeypatch) -> tuple[dict[str, Any], str]:
    result = _cli(store, monkeypatch, "verify")
    assert result.exit_code == 1, _output(result)
    text = _output(result)
    assert "TAMPERED" in text
    report = json.loads(_cli(store, monkeypatch, "verify", "--json").stdout)
    assert report["ok"] is False
    return report, text


def test_verify_names_an_edited_record(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 40, heads=(40,))
    _sql(
        store,
        "UPDATE audit_log SET record = replace(record, '\"ok\"', '\"denied\"') WHERE seq = %s",
        (17,),
    )
    report, text = _tampered(store, monkeypatch)
    assert [(f["kind"], f["seq"]) for f in report["findings"]] == [("edited", 17)]
    assert "seq 17: the record does not match its leaf hash" in text


def test_verify_bounds_a_record_rewritten_with_its_leaf_hash(
    audit: AuditLog, store: Store, monkeypatch
) -> None:
    _fill(audit, 40, heads=(8, 32))
    _, time_, record, leaf = _forge(17, outcome="ok")
    _sql(
        store, "UPDATE audit_log SET record = %s, leaf_hash = %s WHERE seq = %s", (record, leaf, 17)
    )
    report, text = _tampered(store, monkeypatch)
    kinds = [(f["kind"], f["seq"], f["last"]) for f in report["findings"]]
    assert ("rewritten", 8, 31) in kinds  # between the heads at 8 (matches) and 32 (does not)
    assert "the signed head at size 32" in text
    # … and after the last signed head, the log's running state bounds it
    _sql(store, "UPDATE audit_log SET time = %s WHERE seq = %s", (time_, 17))
    _, _, record, leaf = _forge(35)
    _sql(
        store, "UPDATE audit_log SET record = %s, leaf_hash = %s WHERE seq = %s", (record, leaf, 35)
    )
    _sql(store, "DELETE FROM audit_heads")
    report, _ = _tampered(store, monkeypatch)
    spans = {(f["seq"], f["last"]) for f in report["findings"] if f["kind"] == "rewritten"}
    assert spans == {(0, 31), (32, 39)}  # the log's complete subtrees holding 17 and 35


def test_verify_names_a_deleted_record(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 40, heads=(20, 40))
    _sql(store, "DELETE FROM audit_log WHERE seq = %s", (12,))
    report, text = _tampered(store, monkeypatch)
    assert [(f["kind"], f["seq"]) for f in report["findings"]] == [("deleted", 12)]
    assert "seq 12: missing (the row is gone)" in text


def test_verify_names_deleted_records_at_the_end(
    audit: AuditLog, store: Store, monkeypatch
) -> None:
    _fill(audit, 40, heads=(40,))
    _sql(store, "DELETE FROM audit_log WHERE seq >= %s", (37,))
    report, text = _tampered(store, monkeypatch)
    assert [(f["kind"], f["seq"], f["last"]) for f in report["findings"]] == [("deleted", 37, 39)]
    # even when the log's own size is rewritten too, the signed head covers them
    _sql(store, "UPDATE audit_state SET size = 37")
    report, text = _tampered(store, monkeypatch)
    assert ("deleted", 37, 39) in [(f["kind"], f["seq"], f["last"]) for f in report["findings"]]
    assert "the signed head at size 40 covers them" in text


def test_verify_names_a_deletion_hidden_by_renumbering(
    audit: AuditLog, store: Store, monkeypatch
) -> None:
    _fill(audit, 30, heads=(30,))
    _sql(store, "DELETE FROM audit_log WHERE seq = %s", (9,))
    for seq in range(10, 30):
        _sql(store, "UPDATE audit_log SET seq = %s WHERE seq = %s", (seq - 1, seq))
    report, text = _tampered(store, monkeypatch)
    assert [(f["kind"], f["seq"]) for f in report["findings"]] == [("deleted", 9)]
    assert "renumbered" in text


def test_verify_names_an_inserted_record(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 30, heads=(30,))
    _sql(
        store,
        "INSERT INTO audit_log(seq, time, record, leaf_hash) VALUES (%s, %s, %s, %s)",
        _forge(30),
    )
    report, text = _tampered(store, monkeypatch)
    assert [(f["kind"], f["seq"]) for f in report["findings"]] == [("inserted", 30)]
    assert "seq 30: past the log's recorded size of 30" in text


def test_verify_names_a_record_inserted_in_the_middle(
    audit: AuditLog, store: Store, monkeypatch
) -> None:
    _fill(audit, 30, heads=(10, 30))
    for seq in range(29, 19, -1):  # make room at 20
        _sql(store, "UPDATE audit_log SET seq = %s WHERE seq = %s", (seq + 1, seq))
    _sql(
        store,
        "INSERT INTO audit_log(seq, time, record, leaf_hash) VALUES (%s, %s, %s, %s)",
        _forge(20),
    )
    report, text = _tampered(store, monkeypatch)
    found = [(f["kind"], f["seq"]) for f in report["findings"]]
    assert ("inserted", 20) in found
    assert all(kind in ("inserted", "rewritten") for kind, _ in found)
    assert "seq 20 and seq 21 both hold record seq 20" in text


def test_verify_names_reordered_records(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 30, heads=(30,))
    _sql(store, "UPDATE audit_log SET seq = -1 WHERE seq = 5")
    _sql(store, "UPDATE audit_log SET seq = 5 WHERE seq = 6")
    _sql(store, "UPDATE audit_log SET seq = 6 WHERE seq = -1")
    report, text = _tampered(store, monkeypatch)
    assert [(f["kind"], f["seq"], f["last"]) for f in report["findings"]] == [("reordered", 5, 6)]
    assert "seq 5 and seq 6 were swapped" in text


def test_verify_names_a_modified_signed_head(audit: AuditLog, store: Store, monkeypatch) -> None:
    _fill(audit, 20, heads=(10, 20))
    _sql(store, "UPDATE audit_heads SET tree_size = 9 WHERE tree_size = 10")
    report, text = _tampered(store, monkeypatch)
    assert [f["kind"] for f in report["findings"]] == ["signature"]
    assert "does not verify: it was modified" in text


def test_verify_needs_the_key_once_heads_are_signed(
    audit: AuditLog, store: Store, monkeypatch, tmp_path, key_path
) -> None:
    _fill(audit, 5, heads=(5,))
    public = tmp_path / "audit.pub"
    public.write_text(audit.key.public_pem())
    key_path.unlink()
    result = _cli(store, monkeypatch, "verify")
    assert result.exit_code == 2, _output(result)
    result = _cli(store, monkeypatch, "verify", "--public-key", str(public))
    assert result.exit_code == 0, _output(result)
    # a head signed by another key is not this log's
    result = _cli(store, monkeypatch, "verify", "--public-key", str(_other_key(tmp_path)))
    assert result.exit_code == 1 and "signed by another key" in _output(result)


def _other_key(tmp_path) -> Any:
    path = tmp_path / "other.pub"
    path.write_text(AuditKey.generate().public_pem())
    return path


# -- cityos audit head / export and a third party's check --------------------------------


def test_export_gives_checkpoints_a_third_party_checks(
    audit: AuditLog, store: Store, monkeypatch, tmp_path
) -> None:
    _fill(audit, 25)
    assert _cli(store, monkeypatch, "export").exit_code == 1  # nothing signed yet
    result = _cli(store, monkeypatch, "head", "--sign", "--json")
    assert result.exit_code == 0, _output(result)
    assert json.loads(result.stdout)["tree_size"] == 25
    old_file = tmp_path / "cp-25.json"
    assert _cli(store, monkeypatch, "export", "--out", str(old_file)).exit_code == 0
    old = json.loads(old_file.read_text())
    assert old["tree_size"] == 25 and "BEGIN PUBLIC KEY" in old["public_key"]
    _fill(audit, 40)
    audit.sign_head()
    new_file = tmp_path / "cp-65.json"
    result = _cli(store, monkeypatch, "export", "--since", str(old_file), "--out", str(new_file))
    assert result.exit_code == 0, _output(result)
    new = json.loads(new_file.read_text())
    assert new["consistency"]["first"] == 25 and new["consistency"]["second"] == 65
    a.verify_checkpoint(old, new)  # what a third party runs, with the key it kept
    # the latest head, shown
    result = _cli(store, monkeypatch, "head", "--json")
    assert json.loads(result.stdout)["tree_size"] == 65
    # a rewritten history cannot be made to extend the old checkpoint
    _, _, record, leaf = _forge(3)
    _sql(store, "UPDATE audit_log SET record = %s, leaf_hash = %s WHERE seq = 3", (record, leaf))
    fresh = AuditLog(store, key_path=audit.key_path)
    forged = {**a.head_json(fresh.sign_head(force=True))}
    forged["tree_size"], forged["public_key"] = 65, new["public_key"]
    proof = [a._b64(h) for h in fresh.consistency_proof(25, 65)]
    with pytest.raises(a.InvalidCheckpoint):
        a.verify_checkpoint(old, forged, proof)
    result = _cli(store, monkeypatch, "export", "--since", str(old_file))
    assert result.exit_code == 1 and "rewritten" in _output(result)


# -- the API and the signer ----------------------------------------------------------------------


def test_routes_serve_heads_entries_and_proofs(audit: AuditLog, store: Store) -> None:
    client = TestClient(Starlette(routes=a.routes(audit)))
    assert client.get("/audit/head").status_code == 404
    _fill(audit, 70, heads=(30, 70))
    head = client.get("/audit/head").json()
    assert head["tree_size"] == 70
    root = a._unb64(head["sha256_root_hash"], "root")
    key = client.get("/audit/key").json()
    assert key["log_id"] == head["log_id"]
    assert a.verify_head(a.head_from_json(head), AuditKey.from_pem(key["public_key"]))
    entries = client.get("/audit/entries", params={"start": 10, "end": 13}).json()["entries"]
    assert [e["seq"] for e in entries] == [10, 11, 12]
    proof = client.get("/audit/proof/inclusion", params={"index": 11}).json()
    assert proof["tree_size"] == 70  # the latest signed head's size by default
    leaf = a.leaf_hash(entries[1]["record"].encode())
    assert a._b64(leaf) == entries[1]["leaf_hash"] == proof["leaf_hash"]
    path = [a._unb64(h, "h") for h in proof["inclusion_path"]]
    assert a.verify_inclusion(leaf, 11, 70, path, root)
    cons = client.get("/audit/proof/consistency", params={"first": 30}).json()
    old_root = audit.root(30)
    path = [a._unb64(h, "h") for h in cons["consistency"]]
    assert a.verify_consistency(30, 70, old_root, root, path)
    for url, params in (
        ("/audit/proof/inclusion", {"index": 70}),
        ("/audit/proof/inclusion", {"index": 1, "size": 71}),
        ("/audit/proof/consistency", {"first": 71}),
        ("/audit/entries", {"start": "x"}),
        ("/audit/entries", {}),
    ):
        r = client.get(url, params=params)
        assert r.status_code == 400, (url, params, r.text)


def test_run_signer_signs_heads_as_the_log_grows(audit: AuditLog, store: Store) -> None:
    async def main() -> None:
        task = asyncio.create_task(a.run_signer(audit, 0.05))
        await asyncio.sleep(0.2)
        audit.append(_record(0))
        await asyncio.sleep(0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [h.tree_size for h in store.audit.heads()] == [0, 1]
