"""The HTTP edge: ``app`` (routes and thin handlers), ``middleware`` (errors become one-line
responses, CORS, status counts), ``input`` (bounded bodies, bearer tokens), ``deadlines``
(slow-header protection), ``cards_api`` (the host's card API and the SSE fallback)."""
