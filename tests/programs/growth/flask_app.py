"""A Flask app whose endpoint keeps (or not) 320 KB per request.

usage: flask_app.py keep|nothing

Serves on 127.0.0.1 on a free port with werkzeug's server (threaded=False,
so the requests are handled one at a time in the main thread), prints
"listening port=<port> pid=<pid>" on stdout, and serves until stopped
(Ctrl-C, SIGTERM or SIGKILL; scripts/growth/record.py sends them).
`keep`: every GET /work appends a bytearray(320_000) to a module-level
list, allocated on the append line (growing, the append line first).
`nothing`: the same work, nothing kept (steady, or early-growth: importing Flask is growth at start)."""
import os
import sys

from flask import Flask
from werkzeug.serving import make_server

KEEP = len(sys.argv) > 1 and sys.argv[1] == "keep"
HISTORY = []
app = Flask(__name__)


@app.route("/work")
def work():
    if KEEP:
        HISTORY.append(bytearray(320_000))  # @site:flask_append
    else:
        scratch = bytearray(320_000)  # the same work, dropped with the request
        scratch[0] = 1
    return f"ok {len(HISTORY)}\n"


def main():
    server = make_server("127.0.0.1", 0, app, threaded=False)
    print(f"listening port={server.server_port} pid={os.getpid()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("interrupted", flush=True)


if __name__ == "__main__":
    main()
