"""What tests of more than one module or tier share; test modules import from here, never from
each other.

* ``aws``: in-process moto with Baton's tables and bucket, the ``aws``/``services``/``admin_key``
  fixtures, and two reads of the whole table (``table_snapshot``, ``backend_snapshot``).
* ``api``: the JSON client over ``chalice.test.Client`` (``Api``), ``start_run``, ``relax_roles``.
* ``jobs``: a live job token made as the dispatcher and the runner make one.
* ``proofs``: declare, upload and confirm a proof; the context's view of one.
* ``round_trips``: the DynamoDB calls a client makes inside a block.
* ``clock``: the fake clock (``fake_clock``).
* ``big_run``: a run of a thousand tasks started through the services.
* ``scanner_reports``: bandit's real SARIF and JSON output of ``tests/data/sample_app``.
* ``agents``, ``roles``: the scripted agent and bare repositories of end-to-end runs; a running
  stack's role configs, read and put back.
* ``waiting``: polling with a deadline.
"""
