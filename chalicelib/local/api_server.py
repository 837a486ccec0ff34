"""The API server shim: Chalice's local server (what ``chalice local`` runs), made to answer as API
Gateway does where the local server would not: every HTTP method reaches the app, an unknown path is
the contract's 404, and a body's length is checked before it is read.
"""

from __future__ import annotations

import json
from typing import Any, Optional

__all__ = ["local_api_server"]


def local_api_server(app_obj: Any, config: Any, host: str, port: int) -> Any:
    """Chalice's local server (what ``chalice local`` runs), answering every HTTP method through
    the app: the standard library server would answer TRACE or CONNECT itself with a 501, where
    API Gateway (and Chalice) refuse an unsupported method with a 405.

    A path no route matches is a 404 in the contract's error shape. Chalice's own answer is API
    Gateway's 403 "Missing Authentication Token", which echoes the request's Authorization header
    back in its body (and fails on a header that is not ASCII); this one echoes nothing.
    """
    from http.server import BaseHTTPRequestHandler

    from chalice.local import (ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer, LocalGateway,
                               LocalGatewayException)

    def error_body(code: str, message: str) -> bytes:
        return json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()

    def json_headers() -> dict[str, str]:
        return {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}

    not_found = error_body("not_found", "there is no such endpoint; GET /openapi.json lists the API's paths")
    bad_length = error_body("invalid_input", "Content-Length must be the body's size in bytes")
    too_large = error_body("body_too_large", "the body is larger than API Gateway accepts (10 MB)")
    max_body = 10 * 1024 * 1024      # API Gateway refuses larger payloads before the function runs

    class NotFound(LocalGatewayException):
        CODE = 404

    class BadRequest(LocalGatewayException):
        CODE = 400

    class TooLarge(LocalGatewayException):
        CODE = 413

    class Gateway(LocalGateway):
        def _generate_lambda_event(self, method: str, path: str, headers: Any, body: Optional[bytes]) -> Any:
            try:
                return super()._generate_lambda_event(method, path, headers, body)
            except ValueError:      # Chalice's route matcher: no route matches the path
                raise NotFound(json_headers(), not_found) from None

    class RequestHandler(ChaliceRequestHandler):
        # The handler writes the status line and headers, then the body, in two sends: with Nagle's
        # algorithm on, the body waits for the client's delayed ACK of the headers, ~40 ms on every
        # request of a kept-alive connection (a browser's, a requests.Session's). API Gateway has no
        # such pause.
        disable_nagle_algorithm = True

        def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any) -> None:
            # As ChaliceRequestHandler.__init__, with the gateway above (the base class handles the
            # request inside __init__, so the gateway must be in place before it runs).
            self.local_gateway = Gateway(app_object, config)
            BaseHTTPRequestHandler.__init__(self, request, client_address, server)

        def _parse_payload(self) -> Any:
            length = self.headers.get("content-length", "0").strip()
            if not (length.isascii() and length.isdigit() and len(length) <= 12):
                raise BadRequest(json_headers(), bad_length)
            if int(length) > max_body:
                raise TooLarge(json_headers(), too_large)
            return super()._parse_payload()

        def _generic_handle(self) -> None:
            try:
                ChaliceRequestHandler._generic_handle(self)
            except (BadRequest, TooLarge) as error:
                self.close_connection = True      # the body was not read: nothing more on this connection
                self._send_error_response(error)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):   # TRACE, CONNECT, QUERY, anything: the app answers 405
                return self._generic_handle
            raise AttributeError(name)

    if type(app_obj) is not CustomLocalChalice:   # a second stack in one process reuses the swap
        CustomLocalChalice.__bases__ = (LocalChalice, app_obj.__class__)
        app_obj.__class__ = CustomLocalChalice
    return LocalDevServer(app_obj, config, host, port, handler_cls=RequestHandler)
