"""Baton's Chalice app: registers the blueprints and middleware; nothing else lives here."""

from chalice import Chalice, ConvertToMiddleware

from chalicelib.api import keys, projects, runs, system, tasks
from chalicelib.api.middleware import authenticate_request
from chalicelib.observability import logger

app = Chalice(app_name="baton", configure_logs=False)
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)), "all")
app.register_middleware(authenticate_request, "http")

for blueprint in (system.bp, keys.bp, projects.bp, runs.bp, tasks.bp):
    app.register_blueprint(blueprint)
