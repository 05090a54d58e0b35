"""Content-addressed blob store: ``<root>/<sha256>``, written once, never changed.

A write streams into a temp file in the same folder with a running sha256 and a size
cap, fsyncs, and is published by an atomic rename only when the caller commits, so a
failed or aborted upload leaves nothing behind and a stored blob is never half written.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"blob exceeds the limit of {limit} bytes")
        self.limit = limit


class PendingBlob:
    """A fully written temp file with its digest and size; ``publish`` or ``discard``."""

    def __init__(self, store: BlobStore, path: Path, sha256: str, size: int) -> None:
        self.store, self.path, self.sha256, self.size = store, path, sha256, size

    def read(self) -> bytes:
        return self.path.read_bytes()

    def publish(self) -> bool:
        """Move into place; False if the blob already existed (this copy is dropped)."""
        target = self.store.path(self.sha256)
        if target.exists():
            self.discard()
            return False
        os.replace(self.path, target)
        _fsync_dir(self.store.root)
        return True

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)
        # Temp files of a process that died mid-upload are garbage.
        for stale in self._tmp.iterdir():
            stale.unlink(missing_ok=True)

    def path(self, sha256: str) -> Path:
        if not HEX64.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def _temp(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        return fd, Path(name)

    async def receive(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> PendingBlob:
        """Stream ``chunks`` to a temp file; BlobTooLarge past ``max_bytes`` (file removed)."""
        fd, path = self._temp()
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return PendingBlob(self, path, digest.hexdigest(), size)

    def put(self, data: bytes) -> str:
        """Store bytes this process produced (aggregates); returns the sha256."""
        sha = hashlib.sha256(data).hexdigest()
        if self.exists(sha):
            return sha
        fd, path = self._temp()
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        PendingBlob(self, path, sha, len(data)).publish()
        return sha

    def stored(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_file() and HEX64.match(p.name))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
