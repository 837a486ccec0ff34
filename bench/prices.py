"""AWS list prices the cost bench multiplies by (us-east-1, on-demand, no free tier).

Source: the services' public pricing pages (https://aws.amazon.com/<service>/pricing/), as
published in 2025 and read for this bench on 2026-11-30; DynamoDB on-demand is the price after
AWS's 50 % cut of 2024-11-01. Change a price here and every figure follows.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = "2026-11-30 (list prices published 2025, us-east-1)"


@dataclass(frozen=True)
class Price:
    service: str
    unit: str
    usd: float            # per one unit
    source: str


PRICES: dict[str, Price] = {p.unit: p for p in (
    Price("API Gateway", "REST API request", 3.50 / 1e6, "aws.amazon.com/api-gateway/pricing: $3.50 per million (first 333 M)"),
    Price("Lambda", "request", 0.20 / 1e6, "aws.amazon.com/lambda/pricing: $0.20 per million requests"),
    Price("Lambda", "GB-second", 0.0000166667, "aws.amazon.com/lambda/pricing: x86, $0.0000166667 per GB-s"),
    Price("DynamoDB", "write request unit", 0.625 / 1e6, "aws.amazon.com/dynamodb/pricing/on-demand: $0.625 per million WRU"),
    Price("DynamoDB", "read request unit", 0.125 / 1e6, "aws.amazon.com/dynamodb/pricing/on-demand: $0.125 per million RRU"),
    Price("Step Functions", "standard state transition", 0.025 / 1e3, "aws.amazon.com/step-functions/pricing: $0.025 per 1,000"),
    Price("SQS", "standard request", 0.40 / 1e6, "aws.amazon.com/sqs/pricing: $0.40 per million (64 KB chunks)"),
    Price("S3", "PUT/COPY/POST/LIST request", 0.005 / 1e3, "aws.amazon.com/s3/pricing: Standard, $0.005 per 1,000"),
    Price("S3", "GET/HEAD request", 0.0004 / 1e3, "aws.amazon.com/s3/pricing: Standard, $0.0004 per 1,000"),
    Price("EventBridge", "custom event published", 1.00 / 1e6, "aws.amazon.com/eventbridge/pricing: $1.00 per million"),
)}

# Free, so not in PRICES: the table's stream as Lambda's event source mapping reads it ("GetRecords
# API calls invoked by AWS Lambda as part of DynamoDB triggers are free",
# aws.amazon.com/dynamodb/pricing/on-demand, DynamoDB Streams). The publish function those reads
# invoke is priced as any Lambda: a request per batch and its GB-seconds.
FREE_CALLS = {"dynamodbstreams"}

# Not measured: how long an AWS call takes from Lambda in the same region. Assumed, to turn the
# calls each invocation makes into billed milliseconds (moto's timings say nothing about AWS's).
ASSUMED_CALL_MS = {
    ("dynamodb", "TransactWriteItems"): 15.0, ("dynamodb", "*"): 6.0,
    ("stepfunctions", "*"): 30.0, ("sqs", "*"): 15.0, ("s3", "GetObject"): 30.0, ("s3", "*"): 20.0, ("*", "*"): 20.0,
}
# Lambda gives a function one full vCPU at 1,769 MB and proportionally less below; this machine's
# core counts as one such vCPU.
FULL_VCPU_MB = 1769


def call_ms(service: str, operation: str) -> float:
    for key in ((service, operation), (service, "*"), ("*", "*")):
        if key in ASSUMED_CALL_MS:
            return ASSUMED_CALL_MS[key]
    return 0.0
