"""RFC 6962 / 9162 hashing: leaf and node hashes, the frontier, inclusion and consistency
proofs and their checks — functions over bytes, no storage."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from cityos.security.audit.errors import AuditError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962: MTH({}) = SHA-256()


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
