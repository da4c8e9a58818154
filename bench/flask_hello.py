"""The reference ceiling of the STS benchmark (``bench/http_sts.py``): a bare Flask endpoint.

Served exactly as the broker is served (gunicorn, 2 sync workers, no access log)::

    gunicorn -w 2 -k sync --timeout 60 --no-control-socket bench.flask_hello:app

``POST /`` (the benchmark sends the same form it sends the broker) and ``GET /`` answer a
fixed ``hello`` without reading the body: what Flask and gunicorn cost per request with no
application work at all.
"""

from __future__ import annotations

from flask import Flask, Response

BODY = "hello"

app = Flask("flask_hello")


@app.route("/", methods=["GET", "POST"])
def hello() -> Response:
    return Response(BODY, content_type="text/plain")
