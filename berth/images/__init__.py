"""Images: references, configs, the tag store, and the ImageService the daemon uses."""

from berth.images.service import Image, ImageService

__all__ = ["Image", "ImageService"]
