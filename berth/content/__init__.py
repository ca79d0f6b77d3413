"""Content-addressable blob store."""

from berth.content.store import BlobWriter, ContentStore, ContentStoreProtocol, atomic_write

__all__ = ["BlobWriter", "ContentStore", "ContentStoreProtocol", "atomic_write"]
