"""Use cases: each public function or method is one thing a caller can do.

Services authorize the caller, apply the pure domain rules and ask the store to write the
result; they never build keys or speak HTTP.
"""
