"""The audit log: every write, denied request and administrative action, as a Merkle log.

Kept in the manner of Certificate Transparency (RFC 6962, RFC 9162): each record is
canonical JSON (keys sorted, no whitespace, UTF-8) carrying its own position ``seq``; its
leaf hash is ``SHA-256(0x00 || record)``, interior nodes ``SHA-256(0x01 || left || right)``
and the tree over leaves 0..n-1 is RFC 6962's Merkle Tree Hash. Periodically the log signs
a tree head (size, root, time) with Ed25519; inclusion proofs (a record is in the tree a
head signed) and consistency proofs (a later head extends an earlier one) are RFC 9162's,
served under ``/audit/…`` by :func:`routes`.

One module per part: :mod:`.merkle` (hashing and proofs), :mod:`.keys` (the signing key,
signed heads), :mod:`.anchor` (the anchor file), :mod:`.log` (:class:`AuditLog`, over the
hub's :class:`~cityos.hub.store.audit.AuditStore`), :mod:`.verify` (:func:`verify_log`),
:mod:`.serve` (:func:`routes`, :func:`run_signer`) and :mod:`.cli` (``cityos audit``).
This package exports the names its callers use.

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

from cityos.hub.store.audit import AuditEntry, AuditHead
from cityos.security.audit.anchor import (
    ANCHOR_FORMAT,
    ANCHOR_NAME,
    anchor_json,
    anchor_path_for,
    database_identity,
    read_anchor,
    write_anchor,
)
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
from cityos.security.audit.log import (
    CHECKPOINT_FORMAT,
    RECORD_FIELDS,
    TILE,
    AuditLog,
    verify_checkpoint,
)
from cityos.security.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
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
    verify_inclusion,
)
from cityos.security.audit.serve import MAX_ENTRIES, routes, run_signer
from cityos.security.audit.verify import NO_ANCHOR, Anchor, AuditReport, Finding, verify_log

__all__ = [
    "ANCHOR_FORMAT",
    "ANCHOR_NAME",
    "CHECKPOINT_FORMAT",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_ENTRIES",
    "NO_ANCHOR",
    "RECORD_FIELDS",
    "TILE",
    "Anchor",
    "AuditEntry",
    "AuditError",
    "AuditHead",
    "AuditKey",
    "AuditLog",
    "AuditReport",
    "Finding",
    "InvalidCheckpoint",
    "_b64",
    "_unb64",
    "anchor_json",
    "anchor_path_for",
    "canonical",
    "consistency_path",
    "database_identity",
    "frontier_push",
    "frontier_root",
    "head_from_json",
    "head_json",
    "inclusion_path",
    "leaf_hash",
    "node_hash",
    "pack_frontier",
    "read_anchor",
    "root_of",
    "routes",
    "run_signer",
    "tree_head_data",
    "unpack_frontier",
    "verify_checkpoint",
    "verify_consistency",
    "verify_head",
    "verify_inclusion",
    "verify_log",
    "write_anchor",
]
