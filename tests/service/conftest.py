"""The service tier: in-process moto (``services``), services called directly; ``admin_key``, an
admin's key for services that authenticate a caller."""

from tests.support.aws import admin_key, aws, services  # noqa: F401  (fixtures)
