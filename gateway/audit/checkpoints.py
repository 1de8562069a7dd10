"""Signed checkpoints of the audit chain, kept where the database's owner cannot rewrite them.

The chain (``gateway.audit.store``) shows any record changed, deleted or inserted — except
the newest records deleted together with the head moved back to match: what is left is a
shorter chain that holds. So the gateway, at a fixed interval and at shutdown, signs the head
it last committed (record number, hash, time) with an Ed25519 key the database never sees,
and writes the checkpoint to its JSON log stream and to an append-only file. ``bma-gateway
audit verify --checkpoints FILE`` then finds a log that ends before a checkpoint's record, or
whose record differs from it, and says how many records are missing.

A checkpoint line: ``{"seq": 48210, "hash": "<hex>", "at": "<UTC ISO>", "keyId": "<hex>",
"signature": "<base64url>"}``; the signature covers the other four fields (canonical JSON).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit.store import AuditStoreError, Head
from gateway.audit.writer import STORE_DOWN

log = logging.getLogger("bma.audit")

_CONTEXT = b"bma-gateway audit checkpoint\n"  # signatures over checkpoints mean nothing else


class CheckpointError(AuditStoreError):
    """A checkpoint key or file that cannot be used; the message says which and why."""


def create_signing_key(path: Path) -> Path:
    """Write a new Ed25519 signing key (PEM, mode 0600, never overwriting) and its public key
    beside it (``<path>.pub``, for whoever verifies); returns the public key's path."""
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as f:
        path.chmod(0o600)
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    public = path.with_name(path.name + ".pub")
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return public


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    key = _load(path, lambda pem: serialization.load_pem_private_key(pem, None))
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 private key")
    return key


def load_verify_key(path: Path) -> Ed25519PublicKey:
    key = _load(path, serialization.load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} is not an Ed25519 public key (the signing key's .pub)")
    return key


def _load(path: Path, loader: Callable[[bytes], Any]) -> Any:
    try:
        return loader(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"cannot read the checkpoint key from {path}: {exc}") from None


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    seq: int  # the head record
    hash: str  # its hash, hex
    at: str  # when it was signed, UTC ISO 8601
    key_id: str
    signature: str = ""  # base64url

    def signed_part(self) -> bytes:
        fields = {"seq": self.seq, "hash": self.hash, "at": self.at, "keyId": self.key_id}
        return _CONTEXT + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "keyId": self.key_id,
            "signature": self.signature,
        }


def sign(key: Ed25519PrivateKey, head: Head, at: datetime) -> Checkpoint:
    unsigned = Checkpoint(
        head[0],
        head[1].hex(),
        at.astimezone(UTC).isoformat(timespec="microseconds"),
        key_id(key.public_key()),
    )
    signature = base64.urlsafe_b64encode(key.sign(unsigned.signed_part())).decode().rstrip("=")
    return Checkpoint(unsigned.seq, unsigned.hash, unsigned.at, unsigned.key_id, signature)


def read_checkpoints(path: Path, public: Ed25519PublicKey) -> list[Checkpoint]:
    """Every checkpoint in the file, each signature checked; a line that is not a checkpoint
    signed by ``public`` stops the reading, naming the line."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoints from {path}: {exc}") from None
    found = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            found.append(_parsed(line, public, f"{path}:{number}"))
    return found


def _parsed(line: str, public: Ed25519PublicKey, where: str) -> Checkpoint:
    try:
        data = orjson.loads(line)
        checkpoint = Checkpoint(
            int(data["seq"]),
            str(data["hash"]),
            str(data["at"]),
            str(data["keyId"]),
            str(data["signature"]),
        )
        public.verify(_unpadded(checkpoint.signature), checkpoint.signed_part())
    except InvalidSignature:
        raise CheckpointError(
            f"{where}: the checkpoint's signature does not verify with this key"
        ) from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: not a checkpoint ({exc})") from None
    return checkpoint


def _unpadded(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class HeadSource(Protocol):
    async def committed_head(self) -> Head | None: ...


class Checkpointer:
    """Signs the head the writer committed, every ``interval`` seconds and once at the end,
    to the JSON log stream and (when given) an append-only file. A head already checkpointed
    is not signed again."""

    def __init__(
        self,
        writer: HeadSource,
        key: Ed25519PrivateKey,
        file: Path | None,
        interval: float,
    ) -> None:
        self.writer = writer
        self.key = key
        self.file = file
        self.interval = interval
        self.last: Head | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._every_interval(), name="audit-checkpoints")

    async def stop(self) -> None:
        """The final checkpoint: call after the writer has committed its queue."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.checkpoint()

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.checkpoint()

    async def checkpoint(self) -> Checkpoint | None:
        """Sign and write the committed head, if it moved since the last checkpoint."""
        try:
            head = await self.writer.committed_head()
        except STORE_DOWN as exc:  # the next interval tries again
            log.warning("audit checkpoint skipped: the chain head cannot be read (%s)", exc)
            return None
        if head is None or head == self.last:
            return None
        checkpoint = sign(self.key, head, datetime.now(UTC))
        log.info("audit checkpoint", extra={"auditCheckpoint": checkpoint.as_dict()})
        if self.file is not None:
            try:
                await asyncio.to_thread(_append_line, self.file, checkpoint)
            except OSError as exc:
                log.error("audit checkpoint not written to %s: %s", self.file, exc)
                return checkpoint
        self.last = head
        return checkpoint


def _append_line(path: Path, checkpoint: Checkpoint) -> None:
    """One line, appended in one write (O_APPEND: several processes may share the file) and
    flushed to disk before the checkpoint counts as written."""
    line = orjson.dumps(checkpoint.as_dict()) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
