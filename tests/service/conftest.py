"""The service tier: in-process moto (``services``), services called directly; ``admin_key``, an
admin's key for services that authenticate a caller; ``fake_clock`` for time-based rules."""

from tests.support.aws import admin_key, aws, services  # noqa: F401  (fixtures)
from tests.support.clock import fake_clock  # noqa: F401  (a fixture)
