"""The pure domain: models, the stage machine, errors and authorization rules.

Nothing in this package imports boto3, Chalice or powertools; it is tested without AWS.
"""
