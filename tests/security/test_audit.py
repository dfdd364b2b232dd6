"""The audit log's Merkle tree (RFC 6962/9162) and signatures, checked against pymerkle."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InclusionProof, InmemoryTree, verify_consistency, verify_inclusion

from cityos.security import audit as a
from cityos.security.audit import AuditHead, AuditKey

# RFC 6962 test vectors (as in Certificate Transparency's and transparency-dev's test suites)
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _tree(data: list[bytes]) -> tuple[InmemoryTree, list[bytes]]:
    tree = InmemoryTree(algorithm="sha256")
    for d in data:
        tree.append_entry(d)
    return tree, [a.leaf_hash(d) for d in data]


def _mth(leaves: list[bytes]):
    return lambda start, end: a.root_of(leaves[start:end])


def test_rfc6962_test_vectors() -> None:
    assert a.root_of([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    leaves = [a.leaf_hash(d) for d in LEAVES]
    for n, root in enumerate(ROOTS, start=1):
        assert a.root_of(leaves[:n]).hex() == root
        frontier: list[bytes] = []
        for i, h in enumerate(leaves[:n]):
            a.frontier_push(frontier, i, h)
        assert a.frontier_root(frontier).hex() == root
        assert len(frontier) == n.bit_count()


sizes = st.integers(min_value=1, max_value=140)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=sizes)
def test_roots_and_inclusion_paths_are_pymerkles(data: st.DataObject, n: int) -> None:
    tree, leaves = _tree([f"record {i}".encode() for i in range(n)])
    size = data.draw(st.integers(min_value=1, max_value=n))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root = tree.get_root(size)
    assert a.root_of(leaves[:size]) == root
    path = a.inclusion_path(index, size, _mth(leaves))
    theirs = tree.prove_inclusion(index + 1, size)
    assert theirs.path[1:] == path  # pymerkle's path starts with the leaf itself
    assert a.verify_inclusion(leaves[index], index, size, path, root)
    # … and pymerkle's verifier accepts our path
    ours = InclusionProof("sha256", True, size, index + 1, theirs.rule, [leaves[index], *path])
    verify_inclusion(leaves[index], root, ours, index=index + 1, size=size)
    # a proof for another leaf, index or root does not verify
    assert not a.verify_inclusion(a.leaf_hash(b"forged"), index, size, path, root)
    if size > 1:
        assert not a.verify_inclusion(leaves[index], (index + 1) % size, size, path, root)
        assert not a.verify_inclusion(leaves[index], index, size, path, tree.get_root(size - 1))
    assert not a.verify_inclusion(leaves[index], index, size, path[:-1] or [root], root)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=sizes)
def test_consistency_proofs_reproduce_pymerkles_roots(data: st.DataObject, n: int) -> None:
    tree, leaves = _tree([f"record {i}".encode() for i in range(n)])
    second = data.draw(st.integers(min_value=1, max_value=n))
    first = data.draw(st.integers(min_value=1, max_value=second))
    old, new = tree.get_root(first), tree.get_root(second)
    # pymerkle agrees the two roots are consistent (its own proof format) …
    verify_consistency(old, new, tree.prove_consistency(first, second))
    # … and our RFC 9162 proof reproduces both of its roots
    path = a.consistency_path(first, second, _mth(leaves))
    assert a.verify_consistency(first, second, old, new, path)
    if first < second:
        assert path
        assert not a.verify_consistency(first, second, a.leaf_hash(b"x"), new, path)
        assert not a.verify_consistency(first, second, old, a.leaf_hash(b"x"), path)
        assert not a.verify_consistency(first, second, old, new, path[:-1])
        bad = [a.leaf_hash(b"x"), *path[1:]]
        assert not a.verify_consistency(first, second, old, new, bad)
    # a tree whose first part was rewritten is not consistent with the old root
    if first < second:
        _, forged = _tree([b"forged"] + [f"record {i}".encode() for i in range(1, n)])
        forged_new = a.root_of(forged[:second])
        forged_path = a.consistency_path(first, second, _mth(forged))
        assert not a.verify_consistency(first, second, old, forged_new, forged_path)


def test_consistency_edge_cases() -> None:
    _, leaves = _tree([bytes([i]) for i in range(9)])
    root = a.root_of(leaves)
    assert a.consistency_path(0, 9, _mth(leaves)) == []
    assert a.verify_consistency(0, 9, a.EMPTY_ROOT, root, [])
    assert a.consistency_path(9, 9, _mth(leaves)) == []
    assert a.verify_consistency(9, 9, root, root, [])
    assert not a.verify_consistency(9, 9, root, a.EMPTY_ROOT, [])
    assert not a.verify_consistency(5, 4, root, root, [root])
    with pytest.raises(a.AuditError):
        a.consistency_path(10, 9, _mth(leaves))
    with pytest.raises(a.AuditError):
        a.inclusion_path(9, 9, _mth(leaves))


def test_frontier_packs_and_checks_its_length() -> None:
    frontier: list[bytes] = []
    for i in range(13):
        a.frontier_push(frontier, i, a.leaf_hash(bytes([i])))
    assert a.unpack_frontier(a.pack_frontier(frontier), 13) == frontier
    with pytest.raises(a.AuditError):
        a.unpack_frontier(a.pack_frontier(frontier), 16)


def test_records_are_canonical_json() -> None:
    assert a.canonical({"b": 1, "a": "ü", "c": None}) == '{"a":"ü","b":1,"c":null}'.encode()


def _head(key: AuditKey, size: int = 5, root: bytes | None = None) -> AuditHead:
    root = root or a.leaf_hash(b"root")
    sig = key.sign(a.tree_head_data(size, 1_700_000_000_000, root))
    return AuditHead(size, 1_700_000_000_000, root, sig, key.key_id)


def test_tree_head_signature_verifies_with_the_exported_key_and_fails_if_modified() -> None:
    key = AuditKey.generate()
    head = _head(key)
    public = AuditKey.from_pem(key.public_pem())
    assert public.private is None and public.key_id == key.key_id
    assert a.verify_head(head, public)
    # RFC 6962 TreeHeadSignature layout: v1, tree_hash, uint64 time, uint64 size, root
    data = a.tree_head_data(5, 1_700_000_000_000, head.root_hash)
    assert len(data) == 50 and data[:2] == b"\x00\x01"
    for changed in (
        AuditHead(6, head.timestamp, head.root_hash, head.signature, head.key_id),
        AuditHead(5, head.timestamp + 1, head.root_hash, head.signature, head.key_id),
        AuditHead(5, head.timestamp, a.leaf_hash(b"other"), head.signature, head.key_id),
        AuditHead(5, head.timestamp, head.root_hash, bytes(64), head.key_id),
    ):
        assert not a.verify_head(changed, public)
    assert not a.verify_head(head, AuditKey.generate())
    with pytest.raises(a.AuditError):
        public.sign(b"x")
    # round trip through JSON (the checkpoint's and /audit/head's fields)
    assert a.head_from_json(a.head_json(head)) == head


def test_the_key_is_made_once_with_mode_0600(tmp_path) -> None:
    path = tmp_path / "keys" / "audit.pem"
    key = AuditKey.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key.private is not None
    again = AuditKey.load_or_create(path)
    assert again.key_id == key.key_id
    assert [p.name for p in path.parent.iterdir()] == ["audit.pem"]  # no temporary files left
    public = tmp_path / "audit.pub"
    public.write_text(key.public_pem())
    assert AuditKey.load(public).key_id == key.key_id


def test_verify_checkpoint_rejects_bad_inputs() -> None:
    key = AuditKey.generate()
    _, leaves = _tree([bytes([i]) for i in range(10)])
    old = {**a.head_json(_head(key, 4, a.root_of(leaves[:4]))), "public_key": key.public_pem()}
    new = {**a.head_json(_head(key, 10, a.root_of(leaves))), "public_key": key.public_pem()}
    proof = a.consistency_path(4, 10, _mth(leaves))
    a.verify_checkpoint(old, new, proof)
    a.verify_checkpoint(old, new, [a._b64(h) for h in proof])
    with pytest.raises(a.InvalidCheckpoint, match="does not extend"):
        a.verify_checkpoint(old, new, proof[:-1])
    with pytest.raises(a.InvalidCheckpoint, match="smaller"):
        a.verify_checkpoint(new, old, proof)
    with pytest.raises(a.InvalidCheckpoint, match="no consistency proof"):
        a.verify_checkpoint(old, new)
    forged = {**new, "tree_size": 11}
    with pytest.raises(a.InvalidCheckpoint, match="signature"):
        a.verify_checkpoint(old, forged, proof)
    other = AuditKey.generate()
    stranger = {
        **a.head_json(_head(other, 10, a.root_of(leaves))),
        "public_key": other.public_pem(),
    }
    with pytest.raises(a.InvalidCheckpoint, match="another log"):
        a.verify_checkpoint(old, stranger, proof)
    # pinning the key a third party knows
    a.verify_checkpoint(old, new, proof, public_key=key.public_pem())
    with pytest.raises(a.InvalidCheckpoint):
        a.verify_checkpoint(old, new, proof, public_key=other.public_pem())
