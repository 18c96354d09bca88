#!/usr/bin/env python3
"""Latency of other clients during a background save of one big hash (issue 15, item 10).

Starts redis-server and codis-server (each on a free port, no save points), loads one hash
of FIELDS fields into each, then runs BGSAVE while a client sends PING every millisecond,
and prints the longest and the 99th-percentile PING round trip during the save, plus the
save's own figures from INFO (codis-server: the longest lock hold of the save thread).

    python3 scripts/bench-save-latency.py                  # 3,000,000 fields
    FIELDS=300000 CODIS=path/to/codis-server python3 scripts/bench-save-latency.py
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__)))
from bench_resp import conn, enc, read  # noqa: E402

FIELDS = int(os.environ.get("FIELDS", "3000000"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/codis-rs/target"))
CODIS = os.environ.get("CODIS", os.path.join(TARGET, "release", "codis-server"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def info(f, s, section):
    s.sendall(enc("INFO", section))
    text = read(f).decode()
    return dict(l.split(":", 1) for l in text.split("\r\n") if ":" in l)


def measure(name, argv, port):
    d = tempfile.mkdtemp()
    p = subprocess.Popen(argv + ["--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--dir", d], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                s, f = conn(port)
                break
            except OSError:
                time.sleep(0.05)
        batch = 1000
        sent = 0
        while sent < FIELDS:
            cmds = []
            for _ in range(16):
                if sent >= FIELDS:
                    break
                args = ["HSET", "big"]
                for i in range(sent, min(sent + batch, FIELDS)):
                    args += ["field:%d" % i, "value:%d" % i]
                cmds.append(enc(*args))
                sent += batch
            s.sendall(b"".join(cmds))
            for _ in cmds:
                read(f)
        lat = []
        stop = threading.Event()

        def pinger():
            ps, pf = conn(port)
            while not stop.is_set():
                t0 = time.perf_counter()
                ps.sendall(b"PING\r\n")
                pf.readline()
                lat.append(time.perf_counter() - t0)
                time.sleep(0.001)

        th = threading.Thread(target=pinger)
        th.start()
        time.sleep(0.2)
        lat.clear()
        t0 = time.perf_counter()
        s.sendall(enc("BGSAVE"))
        read(f)
        while info(f, s, "persistence").get("rdb_bgsave_in_progress") != "0":
            time.sleep(0.002)
        took = time.perf_counter() - t0
        stop.set()
        th.join()
        pers = info(f, s, "persistence")
        lat.sort()
        p99 = lat[int(len(lat) * 0.99)] if lat else 0
        extra = ""
        if "rdb_last_save_max_hold_us" in pers:
            extra = ", longest save lock hold %.2f ms" % (
                int(pers["rdb_last_save_max_hold_us"]) / 1000)
        print("%-13s %d fields: BGSAVE %.0f ms, %d PINGs, max %.2f ms, p99 %.2f ms%s" % (
            name, FIELDS, took * 1000, len(lat), lat[-1] * 1000, p99 * 1000, extra))
    finally:
        p.terminate()
        p.wait()


measure("redis-server", ["redis-server", "--appendonly", "no"], free_port())
measure("codis-server", [CODIS], free_port())
