#!/usr/bin/env python3
"""A hostile client: opens COUNT connections to HOST:PORT that never complete a request, and
reports how many the server still holds open over time.

Kinds, round robin: silent (nothing sent), 23 of the 24 bytes of the HTTP/2 preface, the full
h2c prior-knowledge preface with an empty SETTINGS frame and then nothing, an HTTP/1.1
request whose headers never end, and an h2c connection that sends a PING every second and
never a request.

    flood.py HOST PORT COUNT SECONDS

Prints `opened N` once every connection that could be made is made, then `open K` each second
(K: connections the server has not closed), then `final K` after SECONDS.
"""
import resource
import socket
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
PING = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"ocspdpng"


def main():
    host, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 64)), hard))
    socks = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            # Past the server's connection bound the kernel's backlog takes the rest; connect
            # succeeds there too (the server accepts them later, or never).
            s.connect((host, port))
        except OSError:
            s.close()
            continue
        kind = i % 5
        try:
            if kind == 1:
                s.sendall(PREFACE[:23])
            elif kind in (2, 4):
                s.sendall(PREFACE + SETTINGS)
            elif kind == 3:
                s.sendall(b"GET /MEQw HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        except OSError:
            pass
        s.setblocking(False)
        socks.append((s, kind))
    print(f"opened {len(socks)}", flush=True)
    closed = set()
    deadline = time.monotonic() + seconds
    while True:
        for s, kind in socks:
            if s in closed:
                continue
            try:
                if kind == 4:
                    s.send(PING)
                # Drain what the server sent (h2 SETTINGS); b"" means it closed.
                while True:
                    data = s.recv(65536)
                    if not data:
                        closed.add(s)
                        break
            except BlockingIOError:
                pass
            except OSError:
                closed.add(s)
        left = len(socks) - len(closed)
        if time.monotonic() >= deadline:
            print(f"final {left}", flush=True)
            break
        print(f"open {left}", flush=True)
        time.sleep(1)
    for s, _ in socks:
        s.close()


if __name__ == "__main__":
    main()
