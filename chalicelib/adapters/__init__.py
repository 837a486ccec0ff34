"""Adapters: translate between the domain and AWS (DynamoDB, S3, SQS, Step Functions, ECS)."""
