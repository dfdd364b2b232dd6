"""The log's Ed25519 signing key and its signed tree heads (RFC 6962's TreeHeadSignature),
as bytes and as JSON (CT's get-sth field names)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from cityos.hub.store.audit import (
    AuditHead,
)
from cityos.security.audit.errors import AuditError, InvalidCheckpoint
from cityos.security.audit.merkle import HASH_SIZE

log = logging.getLogger("cityos.audit")


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


def _is_count(value: Any) -> bool:
    """A non-negative integer that fits RFC 6962's uint64 (bool is not one)."""
    return type(value) is int and 0 <= value < 1 << 64
