"""Small text helpers."""

from .core import slugify

__all__ = ["slugify"]
