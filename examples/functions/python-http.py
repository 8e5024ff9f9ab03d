# SPDX-License-Identifier: Apache-2.0
# An http function in Python: a server on $PORT that answers JSON (the standard library only).
#   husk pack -f erofs -o pyhttp.erofs /usr/bin/python3 $PWD/python-http.py
#   husk fn deploy web --image $PWD/pyhttp.erofs --contract http --zygote \
#       -- /usr/bin/python3 $PWD/python-http.py
import json
import os
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the daemon reuses its connections

    def do_GET(self):
        body = json.dumps({"hello": "python", "path": self.path, "id": str(uuid.uuid4())})
        data = (body + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # one line per request would cost more than the answer
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
