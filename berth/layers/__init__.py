"""Layer store: unpacked layer diffs, chain ids, overlay mounts as data."""

from berth.layers.archive import unpack_layer
from berth.layers.store import Layer, LayerStore, LayerStoreProtocol, chain_id, chain_ids

__all__ = ["Layer", "LayerStore", "LayerStoreProtocol", "chain_id", "chain_ids", "unpack_layer"]
