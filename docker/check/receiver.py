"""scripts/compose-check's webhook receiver: each POSTed body as one line of alerts.jsonl."""
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

OUT = Path("/var/lib/moodwire/receiver/alerts.jsonl")


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with OUT.open("a", encoding="utf-8") as out:
            out.write(json.dumps(body) + "\n")
        self.send_response(200)
        self.end_headers()

    def do_GET(self):  # noqa: N802 - the health check
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")


OUT.parent.mkdir(parents=True, exist_ok=True)
ThreadingHTTPServer(("0.0.0.0", 8080), Hook).serve_forever()
