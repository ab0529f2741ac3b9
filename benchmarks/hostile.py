"""A real, hostile image host on loopback, for the chaos benchmark and the fault tests: it
drips bytes, sends a 10 GB body, loops redirects, redirects to a host IDNA refuses, and serves
one good image. Raw sockets, so it can misbehave in ways an HTTP framework would not allow."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

DRIP_S = 2.0  # one byte this often: every read is "on time", the whole never arrives
HUGE_BYTES = 10 * 1024**3


class HostileServer:
    def __init__(self, image: bytes) -> None:
        self.image = image
        self.stopping = threading.Event()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    request = self.request.recv(65536).decode("latin-1")
                    path = request.split(" ", 2)[1] if " " in request else "/"
                    server.answer(self.request, path)
                except OSError:
                    pass  # the client gave up on us: that is the point

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.tcp.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.tcp.server_address[1]}"
        threading.Thread(target=self.tcp.serve_forever, daemon=True).start()

    def answer(self, sock: socket.socket, path: str) -> None:
        if path == "/ok.png":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: "
                         + str(len(self.image)).encode() + b"\r\nConnection: close\r\n\r\n"
                         + self.image)
        elif path == "/drip.jpg":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                         b"Connection: close\r\n\r\n")
            while not self.stopping.wait(DRIP_S):
                sock.sendall(b"\xff")
        elif path == "/huge.jpg":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: "
                         + str(HUGE_BYTES).encode() + b"\r\nConnection: close\r\n\r\n")
            self._flood(sock)
        elif path == "/huge-undeclared.jpg":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                         b"Connection: close\r\n\r\n")
            self._flood(sock)
        elif path == "/loop":
            self._redirect(sock, "/loop")
        elif path == "/to-idna":
            self._redirect(sock, "http://\u2603.example/a.jpg")
        else:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def _flood(self, sock: socket.socket) -> None:
        block = b"\0" * 65536
        sent = 0
        while sent < HUGE_BYTES and not self.stopping.is_set():
            sock.sendall(block)
            sent += len(block)

    @staticmethod
    def _redirect(sock: socket.socket, location: str) -> None:
        sock.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + location.encode("utf-8")
                     + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.stopping.set()
        self.tcp.shutdown()
        self.tcp.server_close()


def hostile_urls(base: str) -> dict[str, str]:
    """item id -> a URL that must end as that item's error, within the fetch deadline."""
    return {
        "idna-host": "http://\u2603.example/a.jpg",
        "bad-address": "http://256.256.256.256/a.jpg",
        "drip": f"{base}/drip.jpg",
        "huge": f"{base}/huge.jpg",
        "huge-undeclared": f"{base}/huge-undeclared.jpg",
        "redirect-loop": f"{base}/loop",
        "redirect-to-idna": f"{base}/to-idna",
        "blackholed": "http://10.255.255.1/a.jpg",  # nothing answers; connect times out
    }


def wait_until(check, timeout_s: float, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(every_s)
