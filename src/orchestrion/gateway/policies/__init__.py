"""Gateway policies applied on the request path: authentication, authorization, CORS."""
