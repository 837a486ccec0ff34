"""The yardstick of ``bench/cold_import.py``: a bare Chalice app with what Baton's app cannot do
without (boto3, pydantic, a powertools Logger as middleware) and nothing of Baton."""

import boto3  # noqa: F401  (imported, as Baton's app imports it)
from aws_lambda_powertools import Logger
from chalice import Chalice, ConvertToMiddleware
from pydantic import BaseModel

logger = Logger()
app = Chalice(app_name="bare", configure_logs=False)
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)), "all")


class Status(BaseModel):
    ok: bool = True


@app.route("/status")
def status():
    return Status().model_dump()
