"""satchel's builder: recipes and live nodes into verified bundles."""

from installer import BUNDLE_FORMAT, VERSION

__all__ = ["BUNDLE_FORMAT", "VERSION"]
