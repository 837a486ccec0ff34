"""Baton: a control plane for multi-agent software pipelines."""

__version__ = "0.1.0"
