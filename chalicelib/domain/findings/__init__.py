"""Findings: scanners' and testers' reports turned into normalized findings (pure, no I/O).

Accepted reports, one parser each (a ``parse()``)
-------------------------------------------------
* ``sarif``: SARIF 2.1.0, as written by semgrep, CodeQL, trivy, GitHub code scanning and
  ``bandit -f sarif``.
* ``bandit``: bandit's JSON report (``bandit -f json``).
* ``simple``: ``security_report`` ``{"findings": [{title|issue, description, severity, file, line,
  recommendation}]}`` and ``bugs`` ``{"bugs": [...]}`` with the same items.

``reading`` loads a report safely, recognises its shape and picks the parser; ``fields`` is how
every parser reads a report's fields; ``finding`` is the result (and the fix task it becomes);
``reports`` the API's request and answer. Import from the module itself: this package imports
none of them, so the API's import of ``reports`` loads no parser (the service that reports
findings loads them when a request first needs it).

Severity
--------
SARIF: a numeric ``security-severity`` (result or rule properties; CVSS-like, as GitHub reads it:
≥9 critical, ≥7 high, ≥4 medium, else low) wins; then a severity word in the result's or rule's
properties (bandit's ``issue_severity``, ``severity``) or the rule's tags (trivy: ``HIGH``); then the
level (``error`` high, ``warning`` medium, ``note``/``none`` low; absent means the rule's default
level, else ``warning``). Simple formats: critical/high/medium/low (and a few synonyms); absent
means medium.

Identity
--------
A finding is "the same" when its rule, file, line and the tool's own fingerprint are the same:
``dedup_key`` hashes those four (not the tool's name, so bandit's SARIF and JSON reports of one
scan name the same findings).
"""
