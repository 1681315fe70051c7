#!/usr/bin/env python3
"""store_faultd.py - a small HTTP object store that fails on purpose.

Serves GET and HEAD of the files under ROOT (what nginx stored after a
push) on 127.0.0.1:PORT, and lets a test arm faults per object, matched
by a substring of the path:

  POST /__fault?match=SUB&mode=MODE&count=N   arm: the next N requests
                                              whose path holds SUB fail
                                              (count=0: disarm SUB)
  GET  /__count?match=SUB                     requests seen for SUB

MODE: 503 (an error status), 404, slow (headers, then nothing), cut (the
full Content-Length announced, half the body sent, connection closed),
short (a consistent but short body: only its hash can tell).

Usage: store_faultd.py ROOT PORT. Prints "ready" once listening.
"""
import http.server
import os
import socketserver
import sys
import threading
import time
import urllib.parse

ROOT = sys.argv[1]
PORT = int(sys.argv[2])
faults = []          # [match, mode, remaining]
counts = {}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", length=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self):
        u = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/__fault":
            with lock:
                faults[:] = [f for f in faults if f[0] != q["match"]]
                if int(q.get("count", "1")) > 0:
                    faults.append([q["match"], q["mode"], int(q.get("count", "1"))])
            return self.reply(200)
        self.reply(405)

    def serve(self):
        u = urllib.parse.urlparse(self.path)
        if u.path == "/__count":
            q = dict(urllib.parse.parse_qsl(u.query))
            with lock:
                n = sum(v for k, v in counts.items() if q["match"] in k)
            return self.reply(200, str(n).encode())
        with lock:
            counts[u.path] = counts.get(u.path, 0) + 1
            mode = None
            for f in faults:
                if f[0] in u.path and f[2] > 0:
                    f[2] -= 1
                    mode = f[1]
                    break
        path = os.path.normpath(os.path.join(ROOT, u.path.lstrip("/")))
        if not path.startswith(os.path.abspath(ROOT)) or not os.path.isfile(path):
            return self.reply(404)
        body = open(path, "rb").read()
        if mode == "503":
            return self.reply(503)
        if mode == "404":
            return self.reply(404)
        if mode == "slow":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            time.sleep(60)
            return
        if mode == "cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "short":
            return self.reply(200, body[: len(body) // 2])
        self.reply(200, body)

    do_GET = serve
    do_HEAD = serve


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
srv.serve_forever()
