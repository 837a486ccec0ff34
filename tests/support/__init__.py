"""What tests of more than one tier share: in-process moto and its table reads (``aws``), the JSON
client over ``chalice.test.Client`` and the set-ups made through it (``api``), job tokens
(``jobs``), proofs (``proofs``), DynamoDB round-trip counting (``round_trips``), a fake clock
(``clock``) and polling with a deadline (``waiting``). Test modules import from here, never from
each other."""
