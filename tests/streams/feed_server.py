"""A real HTTP server on loopback serving feed fixtures, recording every request."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RSS2 = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Harbor Street Wire</title><language>en-us</language>
<item><title>Harborline Bank &lt;b&gt;shares&lt;/b&gt; plunge 35% after bond losses</title>
<link>https://news.example.com/harborline-plunge?utm_source=rss&amp;utm_medium=feed</link>
<description>&lt;p&gt;The lender disclosed &lt;b&gt;losses&lt;/b&gt;.&lt;/p&gt;</description>
<pubDate>Wed, 18 Nov 2026 13:05:00 GMT</pubDate></item>
<item><title>Fed holds rates steady, signals patience</title>
<link>https://news.example.com/fed-holds</link><pubDate>Wed, 18 Nov 2026 14:00:00 +0100</pubDate></item>
<item><title>Oil rises as OPEC+ extends output cuts</title><link>https://news.example.com/oil-rises</link></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Ledger Daily</title><id>urn:ledger</id><updated>2026-11-18T12:00:00Z</updated>
<entry><title>Novacrest Systems beats profit estimates</title><id>urn:1</id>
<link href="https://ledger.example.com/novacrest-beats#comments"/><updated>2026-11-18T12:00:00Z</updated>
<summary>Quarterly profit rose.</summary></entry>
<entry><title type="html">Kestrel Motors recalls 40,000 units</title><id>urn:2</id>
<link href="https://ledger.example.com/kestrel-recall"/><published>2026-11-18T11:30:00Z</published><updated>2026-11-18T11:31:00Z</updated></entry>
</feed>"""

RSS1 = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://rdf.example.com/"><title>Meridian</title><link>https://rdf.example.com/</link><description>x</description></channel>
<item rdf:about="https://rdf.example.com/gold"><title>Gold hits record as investors seek safety</title>
<link>https://rdf.example.com/gold</link><dc:date>2026-11-18T09:00:00Z</dc:date></item>
</rdf:RDF>"""

ARTICLE_RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Pages</title>
<item><title>Quarry Peak Mining cuts copper output guidance</title><link>{base}/article/quarry</link>
<description>Short summary.</description><pubDate>Wed, 18 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>Broken link story</title><link>{base}/article/missing</link><description>Only the summary.</description></item>
</channel></rss>"""

ARTICLE = """<!DOCTYPE html><html><head><title>Quarry Peak</title><script>var tracking = 1;</script></head>
<body><nav>Home | Markets | Opinion</nav><article><h1>Quarry Peak Mining cuts copper output guidance</h1>
<p>Quarry Peak Mining lowered its full-year copper production forecast on Wednesday, citing flooding at its
largest open-pit mine and a shortage of replacement equipment that could last into the spring.</p>
<p>The company now expects output of 310,000 to 325,000 tonnes, down from an earlier range of 350,000 to
370,000 tonnes. Shares fell 6 percent in early trading as analysts trimmed their earnings estimates.</p>
</article><footer>Copyright Meridian Markets</footer></body></html>"""

HTML = "<!DOCTYPE html><html><head><title>Welcome</title></head><body><p>Not a feed</p></body></html>"
GARBAGE = "<?xml version='1.0'?><rss><channel><item><title>unclosed"

ETAG = '"v1"'


class FeedServer:
    """``token`` is put into every item link, so each test's items have ids of their own."""

    def __init__(self, token: str = "t") -> None:
        self.token = token
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers)))
                if self.path == "/rss2":
                    if self.headers.get("If-None-Match") == ETAG:
                        self.send_response(304)
                        self.end_headers()
                        return
                    self._send(RSS2, "application/rss+xml", {"ETag": ETAG})
                elif self.path == "/atom":
                    self._send(ATOM, "application/atom+xml",
                               {"Last-Modified": "Wed, 18 Nov 2026 12:00:00 GMT"})
                elif self.path == "/rss1":
                    self._send(RSS1, "application/rdf+xml")
                elif self.path == "/articles.rss":
                    self._send(ARTICLE_RSS.replace("{base}", server.url), "application/rss+xml")
                elif self.path == "/article/quarry":
                    self._send(ARTICLE, "text/html; charset=utf-8")
                elif self.path == "/html":
                    self._send(HTML, "text/html; charset=utf-8")
                elif self.path == "/garbage":
                    self._send(GARBAGE, "application/xml")
                elif self.path == "/huge":  # 50 MB without a Content-Length
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.end_headers()
                    chunk = b"<!-- " + b"x" * (1 << 20) + b" -->"
                    try:
                        for _ in range(50):
                            self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                elif self.path == "/error":
                    self.send_response(503)
                    self.end_headers()
                else:
                    self.send_response(404)
                    self.end_headers()

            def _send(self, body: str, ctype: str, extra: dict[str, str] | None = None) -> None:
                data = body.replace("example.com/", f"example.com/{server.token}/").encode()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def hits(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
