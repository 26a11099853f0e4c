#!/usr/bin/env python3
"""Sends exactly N keep-alive HTTP/1.1 GETs of PATH over C connections, for benches/instructions.sh.

usage: client.py HOST:PORT PATH N C [FIRST]
With FIRST, request i goes to PATH?url=bench.example/p<FIRST + i> (distinct pages). Exits 1 if any
answer is not 2xx. Loopback use only; it stops when the N answers are in.
"""
import socket
import sys
import threading


def main():
    hostport, path, total, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    first = int(sys.argv[5]) if len(sys.argv) > 5 else None
    host, port = hostport.rsplit(":", 1)
    numbers = iter(range(total))
    lock = threading.Lock()
    failures = []

    def answer(sock, buf, target):
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode())
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            rest += data
        return status, rest[length:]

    def worker():
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            with lock:
                i = next(numbers, None)
            if i is None:
                break
            target = path if first is None else f"{path}?url=bench.example/p{first + i}"
            status, buf = answer(sock, buf, target)
            if not 200 <= status < 300:
                failures.append(status)
        sock.close()

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        print(f"client.py: {len(failures)} answers were not 2xx", file=sys.stderr)
        sys.exit(1)


main()
