"""Running Baton on one machine against moto.

* ``stack``: the local stack (``make up``): starts the parts below and wires the services.
* ``resources``: the tables, bucket, queues and state machines of ``infra/resources.yaml``.
* ``api_server``: Chalice's local server, answering as API Gateway does.
* ``pump``: the SQS pump, Lambda's event source mapping for the dispatch queue.
* ``stream_pump``: Lambda's event source mapping for the table's DynamoDB Stream (the ``publish`` function).
* ``moto_fidelity``: moto's transactions made atomic under threads (``patched_moto``: everything below).
* ``moto_queries``: moto's Query reading only its partition, its DynamoDB answers serialized directly.
* ``snapshot``: the stack's data saved when it stops and restored when it starts (``.baton/state/``).
"""
