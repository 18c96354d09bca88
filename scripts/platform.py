#!/usr/bin/env python3
"""Starts the local codis-rs platform and keeps it in the foreground until Ctrl-C or SIGTERM.

Run through scripts/cluster.sh, which builds the binaries and the web UI first. What starts:

  codis-fe            http://127.0.0.1:9090           (web console + REST API)
  product1            dashboard :18080, proxy :19000  (two groups: master + replica each)
  product2            dashboard :18081, proxy :19001  (one group: master + replica)
  codis-servers       6379-6384
  coordinator         a folder (default), or ZooKeeper / etcd started from Debian's packages

Groups, servers, replication, the rebalance and the isolation settings are made through the
fe's REST API, so they are in its audit history. Everything lives in one data folder; a second
start on it comes back with the same groups, keys and history. Every port can be moved with an
environment variable (FE_PORT, P1_DASHBOARD_PORT, P1_PROXY_PORT, ..., SERVER_BASE_PORT).
"""

import argparse
import ctypes
import fcntl
import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The ports, from the environment: set by load_ports() at the start of run(), so that a bad
# value is reported by fail() like every other problem.
FE_PORT = SERVER_BASE = ZK_PORT = ETCD_PORT = ETCD_PEER_PORT = 0
PRODUCTS = []


def env_port(name, default, span=1):
    """The port in $name (default when unset); span ports from it must be valid."""
    text = os.environ.get(name, "").strip() or str(default)
    try:
        port = int(text, 10)
    except ValueError:
        port = -1
    if not 1 <= port <= 65536 - span:
        more = f" ({span} ports start there)" if span > 1 else ""
        fail(f"{name}={text!r} is not a valid port: want a number from 1 to {65536 - span}{more}")
    return port


def load_ports():
    global FE_PORT, SERVER_BASE, PRODUCTS, ZK_PORT, ETCD_PORT, ETCD_PEER_PORT
    FE_PORT = env_port("FE_PORT", 9090)
    SERVER_BASE = env_port("SERVER_BASE_PORT", 6379, span=6)
    PRODUCTS = [
        {
            "name": "product1",
            "dashboard": env_port("P1_DASHBOARD_PORT", 18080),
            "proxy": env_port("P1_PROXY_PORT", 19000),
            "proxy_admin": env_port("P1_PROXY_ADMIN_PORT", 11080),
            # group id -> [master port, replica port]
            "groups": {1: [SERVER_BASE, SERVER_BASE + 1], 2: [SERVER_BASE + 2, SERVER_BASE + 3]},
            "isolation": "physical",
        },
        {
            "name": "product2",
            "dashboard": env_port("P2_DASHBOARD_PORT", 18081),
            "proxy": env_port("P2_PROXY_PORT", 19001),
            "proxy_admin": env_port("P2_PROXY_ADMIN_PORT", 11081),
            "groups": {1: [SERVER_BASE + 4, SERVER_BASE + 5]},
            "isolation": "logical",
        },
    ]
    ZK_PORT = env_port("ZK_PORT", 2181)
    ETCD_PORT = env_port("ETCD_PORT", 2379)
    ETCD_PEER_PORT = env_port("ETCD_PEER_PORT", 2380)

procs = []  # (name, Popen, stage): stage 0 coordinator, 1 servers, 2 dashboards, 3 fe/proxies
stopping = False


class Stop(Exception):
    """Raised by a signal: unwind, stop every process, exit."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def log(msg):
    print(f"[platform] {msg}", flush=True)


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def port_bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the servers bind: connections of a previous run in TIME_WAIT do not count.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def all_ports(coordinator):
    ports = [("codis-fe", FE_PORT)]
    for p in PRODUCTS:
        ports += [
            (f"{p['name']} dashboard", p["dashboard"]),
            (f"{p['name']} proxy", p["proxy"]),
            (f"{p['name']} proxy admin", p["proxy_admin"]),
        ]
        for gid, servers in p["groups"].items():
            for port in servers:
                ports.append((f"{p['name']} group {gid} codis-server", port))
    if coordinator == "zookeeper":
        ports.append(("zookeeper", ZK_PORT))
    if coordinator == "etcd":
        ports += [("etcd", ETCD_PORT), ("etcd peer", ETCD_PEER_PORT)]
    return ports


def check_ports(coordinator):
    taken = [(what, port) for what, port in all_ports(coordinator) if not port_bindable(port)]
    if taken:
        lines = "\n".join(f"  port {port} ({what}) is already in use" for what, port in taken)
        fail(
            f"cannot start, ports taken:\n{lines}\n"
            "  stop what uses them, or move ours with FE_PORT, P1_PROXY_PORT, P2_PROXY_PORT,\n"
            "  P1_DASHBOARD_PORT, P2_DASHBOARD_PORT, P1_PROXY_ADMIN_PORT, P2_PROXY_ADMIN_PORT,\n"
            "  SERVER_BASE_PORT (6 ports from it), ZK_PORT, ETCD_PORT, ETCD_PEER_PORT."
        )


def _die_with_parent():
    # The signals blocked around the fork must not stay blocked in the child (a mask survives
    # exec, and a server with SIGTERM blocked never stops).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    # The children get SIGTERM if this script dies in any way (even SIGKILL).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start(name, argv, logfile, stage, env=None, cwd=None):
    out = open(logfile, "ab")
    # No signal between the fork and the bookkeeping, so no child is ever unknown.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    try:
        p = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        p.logfile = logfile
        procs.append((name, p, stage))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return p


def log_tail(path, n=20):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join("    " + l for l in lines[-n:])
    except OSError:
        return "    (no log)"


def check_children():
    for name, p, _ in procs:
        if p.poll() is not None:
            fail(f"{name} exited (code {p.returncode}); its log {p.logfile} ends with:\n"
                 + log_tail(p.logfile))


def wait_port(name, port, proc, within=60):
    deadline = time.time() + within
    while time.time() < deadline:
        check_children()
        if port_open(port):
            time.sleep(0.2)
            check_children()  # listening, and still alive (not someone else's listener)
            return
        time.sleep(0.1)
    fail(f"{name} did not listen on {port} within {within} s; log {proc.logfile}:\n" + log_tail(proc.logfile))


def stop_all():
    global stopping
    stopping = True
    # Stage by stage: the fe and proxies, then the dashboards (they release their locks), then
    # the servers (they save), then the coordinator.
    for stage in (3, 2, 1, 0):
        group = [p for _, p, st in procs if st == stage and p.poll() is None]
        for p in group:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 15
        for p in group:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                name = next(n for n, q, _ in procs if q is p)
                log(f"{name} did not stop within 15 s of SIGTERM; killing it")
                kill_hard(p)


def kill_hard(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def on_signal(signum, _frame):
    if stopping:
        # A second Ctrl-C: no more waiting.
        log(f"{signal.Signals(signum).name} again: killing what is left")
        for _, p, _ in procs:
            if p.poll() is None:
                kill_hard(p)
        return
    raise Stop(signum)


# ---- a small RESP client ----


def resp(port, *args):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return read_reply(f)


def read_reply(f):
    line = f.readline().rstrip(b"\r\n")
    t, rest = line[:1], line[1:]
    if t in (b"+", b"-"):
        return rest.decode()
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if t == b"*":
        return [read_reply(f) for _ in range(int(rest))]
    raise RuntimeError(f"bad reply {line!r}")


# ---- the fe's REST API ----


class Fe:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), urllib.request.ProxyHandler({})
        )
        self.csrf = ""

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.csrf:
            req.add_header("X-CSRF-Token", self.csrf)
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"message": text.decode(errors="replace")}

    def ok(self, method, path, body=None):
        status, v = self.call(method, path, body)
        if status != 200:
            fail(f"{method} {path}: HTTP {status}: {v.get('message', v) if isinstance(v, dict) else v}")
        return v

    def login(self, password):
        status, v = self.call("POST", "/api/v1/session", {"username": "admin", "password": password})
        if status != 200:
            fail(
                f"logging in to codis-fe as admin failed (HTTP {status}: {v.get('message')}); the "
                "password is fixed when fe.db is created: set CODIS_FE_ADMIN_PASSWORD to the current one"
            )
        self.csrf = v["csrf_token"]


def wait_for(what, check, within=120):
    deadline = time.time() + within
    while time.time() < deadline:
        check_children()
        try:
            v = check()
            if v:
                return v
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.3)
    fail(f"timed out after {within} s waiting for {what}")


# ---- coordinators ----


def start_zookeeper(data):
    jar = "/usr/share/java/zookeeper.jar"
    if not os.path.isfile(jar) or not shutil.which("java"):
        install(["zookeeper"])
    d = os.path.join(data, "zookeeper")
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(
            f"tickTime=2000\ndataDir={d}/data\nclientPort={ZK_PORT}\nclientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\n"
        )
    p = start(
        "zookeeper",
        ["java", "-Xmx256m", f"-Dzookeeper.log.dir={d}", "-cp", f"/etc/zookeeper/conf:{jar}",
         "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
        os.path.join(d, "zookeeper.log"),
        0,
    )
    wait_port("zookeeper", ZK_PORT, p)
    return ("zookeeper", f"127.0.0.1:{ZK_PORT}")


def start_etcd(data):
    if not shutil.which("etcd"):
        install(["etcd-server"])
        # Debian's package may start its own etcd on 2379 right away.
        if not port_bindable(ETCD_PORT):
            fail(f"port {ETCD_PORT} is taken after installing etcd-server (its service started): "
                 "sudo systemctl disable --now etcd, or set ETCD_PORT")
    d = os.path.join(data, "etcd")
    os.makedirs(d, exist_ok=True)
    url = f"http://127.0.0.1:{ETCD_PORT}"
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    p = start(
        "etcd",
        ["etcd", "--name", "platform", "--data-dir", os.path.join(d, "data"),
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"platform={peer}"],
        os.path.join(d, "etcd.log"),
        0,
    )
    wait_port("etcd", ETCD_PORT, p)
    return ("etcd", f"127.0.0.1:{ETCD_PORT}")


def install(packages):
    log(f"installing {' '.join(packages)} from Debian's packages (apt)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = " ".join(sudo + ["apt-get", "install", "-y"] + packages)
    if not shutil.which("apt-get") or (sudo and not shutil.which("sudo")):
        fail(f"cannot install {' '.join(packages)} here; install it ({cmd}) and start again")
    try:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + packages, check=True, env=env)
    except subprocess.CalledProcessError:
        fail(f"installing {' '.join(packages)} failed; run: {cmd}")


# ---- the platform ----


def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, on_signal)
    code = 0
    try:
        run()
    except Stop as e:
        log(f"{signal.Signals(e.signum).name}: stopping every process")
        code = 128 + e.signum
    except Failed as e:
        print(f"[platform] error: {e}", file=sys.stderr, flush=True)
        code = 1
    except BaseException as e:  # noqa: BLE001 - whatever happens, no process is left behind
        print(f"[platform] error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        code = 1
    try:
        stop_all()
    except Stop:
        stop_all()
    log("stopped")
    sys.exit(code)


def run():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coordinator", choices=["filesystem", "zookeeper", "etcd"], default="filesystem")
    ap.add_argument("--data", default=os.environ.get("CODIS_DATA", os.path.join(ROOT, "tmp", "platform")))
    ap.add_argument("--bin", required=True, help="folder with the built binaries")
    ap.add_argument("--ui", default="", help="folder with the built web UI")
    args = ap.parse_args()
    load_ports()

    data = os.path.abspath(args.data)
    os.makedirs(data, mode=0o700, exist_ok=True)
    # One platform per data folder.
    lock = open(os.path.join(data, ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fail(f"another scripts/cluster.sh runs on {data}; stop it first (or use --data)")
    check_ports(args.coordinator)
    if args.ui and not all(os.path.isfile(os.path.join(args.ui, f)) for f in ("index.html", "frontend_bg.wasm")):
        fail(f"the web UI is not built in {args.ui} (cargo run -p xtask -- dist {args.ui})")
    layout_file = os.path.join(data, "layout.json")
    layout = {"coordinator": args.coordinator, "fe": FE_PORT, "server_base": SERVER_BASE,
              "proxies": [p["proxy"] for p in PRODUCTS], "dashboards": [p["dashboard"] for p in PRODUCTS],
              "proxy_admins": [p["proxy_admin"] for p in PRODUCTS]}
    if os.path.exists(layout_file):
        before = json.load(open(layout_file))
        # A folder set up before the admin ports were recorded: take them as they are now.
        before.setdefault("proxy_admins", layout["proxy_admins"])
        if before != layout:
            fail(f"{data} was set up with {before}, not {layout}: use the same ports and coordinator, "
                 "or another --data folder")
    first_start = not os.path.exists(os.path.join(data, "fe.db"))
    b = lambda name: os.path.join(args.bin, name)  # noqa: E731

    # The admin password: set once, when fe.db is created (the caller's, else a generated one),
    # and kept in DATA/admin-password (0600) for the next starts.
    pw_file = os.path.join(data, "admin-password")
    given = os.environ.get("CODIS_FE_ADMIN_PASSWORD", "")
    if first_start:
        password = given or secrets.token_urlsafe(12)
        if len(password) < 8:
            fail("CODIS_FE_ADMIN_PASSWORD needs at least 8 characters")
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, password.encode() + b"\n")
        os.close(fd)
    elif given:
        password = given
    elif os.path.exists(pw_file):
        password = open(pw_file).read().strip()
    else:
        fail(f"{data}/fe.db exists but not {pw_file}: set CODIS_FE_ADMIN_PASSWORD to the admin password")

    log(f"starting in {data} (coordinator: {args.coordinator})")
    if args.coordinator == "zookeeper":
        coord = start_zookeeper(data)
    elif args.coordinator == "etcd":
        coord = start_etcd(data)
    else:
        coord = ("filesystem", os.path.join(data, "coordinator"))
        os.makedirs(coord[1], exist_ok=True)
    coord_flag = {"filesystem": "--filesystem", "zookeeper": "--zookeeper", "etcd": "--etcd"}[coord[0]]

    # codis-servers, each with its own folder and config file (so CONFIG REWRITE keeps the
    # replication set up by the dashboard across restarts), AOF on so keys survive.
    for p in PRODUCTS:
        for servers in p["groups"].values():
            for port in servers:
                d = os.path.join(data, f"server-{port}")
                os.makedirs(d, exist_ok=True)
                conf = os.path.join(d, "redis.conf")
                if not os.path.exists(conf):
                    with open(conf, "w") as f:
                        f.write(
                            f"port {port}\nbind 127.0.0.1\ndir {d}\nappendonly yes\n"
                            f"logfile {d}/server.log\nsave 60 1\n"
                        )
                # Port, folder and log on the command line too, so a moved data folder works.
                proc = start(
                    f"codis-server:{port}",
                    [b("codis-server"), conf, "--port", str(port), "--dir", d,
                     "--logfile", os.path.join(d, "server.log")],
                    os.path.join(d, "stdout.log"),
                    1,
                )
                wait_port(f"codis-server {port}", port, proc)

    for p in PRODUCTS:
        d = os.path.join(data, p["name"])
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "dashboard.toml")
        with open(conf, "w") as f:
            f.write(
                f'coordinator_name = "{coord[0]}"\ncoordinator_addr = "{coord[1]}"\n'
                f'product_name = "{p["name"]}"\nproduct_auth = ""\n'
                f'admin_addr = "127.0.0.1:{p["dashboard"]}"\n'
            )
        # A dashboard stopped by this script released its lock; --remove-lock recovers from
        # one that was killed (the lock names this host and port).
        proc = start(
            f"codis-dashboard:{p['name']}",
            [b("codis-dashboard"), "--config", conf, "--log", os.path.join(d, "dashboard.log"), "--remove-lock"],
            os.path.join(d, "dashboard.out"),
            2,
        )
        wait_port(f"{p['name']} dashboard", p["dashboard"], proc)

    log("servers and dashboards are up; starting codis-fe")
    fe_env = dict(os.environ, CODIS_FE_ADMIN_PASSWORD=password)
    fe_args = [b("codis-fe"), coord_flag, coord[1], "--listen", f"127.0.0.1:{FE_PORT}",
               "--db", os.path.join(data, "fe.db"), "--log", os.path.join(data, "fe.log"),
               "--poll-interval", "1"]
    if args.ui:
        fe_args += ["--assets-dir", args.ui]
    proc = start("codis-fe", fe_args, os.path.join(data, "fe.out"), 3, env=fe_env)
    wait_port("codis-fe", FE_PORT, proc)
    fe = Fe(FE_PORT)
    fe.login(password)
    wait_for(
        "codis-fe to find both product lines",
        lambda: all(
            any(q["name"] == p["name"] and q["reachable"] for q in fe.ok("GET", "/api/v1/products")["products"])
            for p in PRODUCTS
        ),
    )

    for p in PRODUCTS:
        name = p["name"]
        detail = fe.ok("GET", f"/api/v1/products/{name}")
        groups = {g["id"]: g for g in detail["topom"]["stats"]["group"]["models"]}
        for gid, servers in p["groups"].items():
            if gid not in groups:
                fe.ok("POST", f"/api/v1/products/{name}/groups", {"group_id": gid})
                groups[gid] = {"servers": []}
            have = {s["server"] for s in groups[gid]["servers"]}
            for port in servers:
                addr = f"127.0.0.1:{port}"
                if addr not in have:
                    # The dashboard queues the SLAVEOF of a replica it is given.
                    fe.ok("POST", f"/api/v1/products/{name}/groups/{gid}/servers", {"addr": addr})
        # A replica that came back as a master (its config file never got the replicaof line,
        # or it was detached by hand) gets its SLAVEOF again.
        for gid, servers in p["groups"].items():
            for port in servers[1:]:
                info = resp(port, "INFO", "replication")
                if "role:master" in info:
                    status, v = fe.call("POST", f"/api/v1/products/{name}/groups/{gid}/sync-action",
                                        {"addr": f"127.0.0.1:{port}", "action": "create"})
                    if status != 200 and "already exist" not in str(v):
                        fail(f"re-attaching replica {port}: HTTP {status}: {v}")
        proxy_admin = f"127.0.0.1:{p['proxy_admin']}"
        conf = os.path.join(data, name, "proxy.toml")
        with open(conf, "w") as f:
            f.write(
                f'product_name = "{name}"\nproduct_auth = ""\n'
                f'proxy_addr = "127.0.0.1:{p["proxy"]}"\nadmin_addr = "{proxy_admin}"\n'
            )
        # The proxy goes online through its dashboard, as Codis's do (and again after a restart).
        proc = start(
            f"codis-proxy:{name}",
            [b("codis-proxy"), "--config", conf, "--dashboard", f"127.0.0.1:{p['dashboard']}",
             "--log", os.path.join(data, name, "proxy.log")],
            os.path.join(data, name, "proxy.out"),
            3,
        )
        wait_port(f"{name} proxy", p["proxy"], proc)
        summary = fe.ok("GET", f"/api/v1/products/{name}")["summary"]
        if summary["slots_offline"] > 0:
            plan = fe.ok("POST", f"/api/v1/products/{name}/rebalance/preview")
            if plan["plan"]:
                fe.ok("POST", f"/api/v1/products/{name}/rebalance", plan)

    log("groups, proxies and the rebalance are set; waiting for every slot and replica")
    for p in PRODUCTS:
        name = p["name"]

        def settled(name=name):
            s = fe.ok("GET", f"/api/v1/products/{name}")["summary"]
            return (s["slots_offline"] == 0 and s["slots_migrating"] == 0 and s["proxies_up"] == 1
                    and s["masters_down"] == 0 and s["replicas_out_of_sync"] == 0)

        wait_for(f"{name}: every slot served, replicas in sync", settled, within=180)
    # Isolation: product1's servers are its own; product2 may share, with the same roles.
    for p in PRODUCTS:
        modes = fe.ok("GET", f"/api/v1/products/{p['name']}/isolation")["modes"]
        if modes.get(p["name"]) != p["isolation"]:
            fe.ok("PUT", f"/api/v1/products/{p['name']}/isolation", {"mode": p["isolation"]})

    # A few sample keys (kept if they exist).
    for p in PRODUCTS:
        for i in range(1, 6):
            r = resp(p["proxy"], "SET", f"{p['name']}:sample:{i}", f"value {i}", "NX")
            if isinstance(r, str) and r.startswith("ERR"):
                fail(f"writing a sample key through {p['name']}'s proxy: {r}")
        resp(p["proxy"], "HSET", f"{p['name']}:user:1", "name", "ada", "lang", "rust")
    with open(layout_file, "w") as f:
        json.dump(layout, f)

    print(flush=True)
    print("codis-rs platform is ready" + (" (first start)" if first_start else " (restarted on the same data)"))
    print(f"  console    http://127.0.0.1:{FE_PORT}/   user admin, password {password}")
    for p in PRODUCTS:
        print(f"  {p['name']}   redis-cli -p {p['proxy']}   (dashboard 127.0.0.1:{p['dashboard']}, "
              f"{len(p['groups'])} group(s), isolation {p['isolation']})")
    print(f"  try        redis-cli -p {PRODUCTS[0]['proxy']} get product1:sample:1")
    print(f"  REST API   http://127.0.0.1:{FE_PORT}/api/openapi.json")
    print(f"  data/logs  {data}   (coordinator: {coord[0]} {coord[1]})")
    print("Ctrl-C stops every process started here.", flush=True)

    while True:
        check_children()
        time.sleep(1)


if __name__ == "__main__":
    main()
