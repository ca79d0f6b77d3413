"""``docker save`` and ``docker load``, by their old name: the code is in save.py (docker-archive
out, as dockerd 20.10 writes it), load.py (docker-archive, Docker 25+ and OCI layouts in; all or
nothing) and archive_common.py (what both use). This module only re-exports their names so that
existing imports keep working; new code imports from those modules.
"""

from berth.images.archive_common import spool_dir
from berth.images.load import INDEX_TYPES, load
from berth.images.save import EPOCH, ZERO_TIME, SaveImage, go_config, plan_save, save, v1_ids, write_save
from berth.images.save import _layer_tar as _layer_tar  # berth/registry/client/push.py

__all__ = ["EPOCH", "INDEX_TYPES", "ZERO_TIME", "SaveImage", "go_config", "load", "plan_save", "save",
           "spool_dir", "v1_ids", "write_save"]
