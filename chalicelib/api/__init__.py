"""The HTTP edge: Chalice blueprints, auth middleware, error mapping. Routes only parse, call one
service method and shape the response."""
