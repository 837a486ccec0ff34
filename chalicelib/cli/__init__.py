"""The ``baton`` command-line tool: a client of Baton's HTTP API (``python -m chalicelib.cli``).

``main.py`` owns the root command and the error → exit-code mapping; ``config.py`` finds the API
and its key; ``output.py`` prints tables or JSON; ``transfer.py`` moves proof bytes to and from S3;
``commands/`` holds one module per command group, registered in ``commands/__init__.py``.
"""

from .main import cli, main

__all__ = ["cli", "main"]
