#!/usr/bin/env python3
"""Tunnel benchmark: our wstunnel against direct transfers and (optionally) upstream wstunnel.

Run through bench/tunnel.sh. Everything runs on 127.0.0.1: a throwaway PKI made with the
openssl CLI, an echo server, a sink server, our server and client (and upstream's when
UPSTREAM_WSTUNNEL is set), all over wss:// with mTLS and `-L tcp://`.

Figures (medians of several runs, printed with ratios; the implementations are measured in
alternation within each round so that load from other programs affects them alike):
  - throughput of one TCP stream through the tunnel vs the same transfer direct;
  - short tunnels per second (connect, 32-byte round trip, close), one at a time and 32 at once;
  - the same short tunnels with `--connection-min-idle 4` on both clients;
  - server memory (RSS) with 1000 open idle tunnels.
Two reference rows show where the limits are: our tunnel over ws:// (same relay, no TLS) for
throughput and for short tunnels.
"""

import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

OURS = os.environ.get("WSTUNNEL", "target/release/wstunnel")
UPSTREAM = os.environ.get("UPSTREAM_WSTUNNEL")
STREAM_BYTES = int(os.environ.get("BENCH_STREAM_MIB", "256")) * 1024 * 1024
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SEQUENTIAL_TUNNELS = int(os.environ.get("BENCH_SEQUENTIAL", "200"))
PARALLEL_WORKERS = 32
PARALLEL_PER_WORKER = int(os.environ.get("BENCH_PARALLEL_PER_WORKER", "20"))
IDLE_TUNNELS = int(os.environ.get("BENCH_IDLE", "1000"))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def make_pki(directory):
    """CA, server certificate (SAN 127.0.0.1) and a client certificate (CN bench-client)."""
    for sub in ("certs", "private", "crl"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    openssl(directory, "req", "-nodes", "-x509", "-newkey", "rsa:2048", "-keyout",
            "private/ca.key.pem", "-out", "certs/ca.cert.pem", "-days", "30",
            "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:true",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, cn, ext in (
        ("wstunnel-server", "bench server",
         "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
         "subjectAltName=DNS:localhost,IP:127.0.0.1\n"),
        ("bench-client", "bench-client",
         "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"),
    ):
        with open(os.path.join(directory, f"{name}.ext"), "w") as extensions:
            extensions.write(ext)
        openssl(directory, "req", "-nodes", "-new", "-newkey", "rsa:2048", "-keyout",
                f"private/{name}.pem", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "certs/ca.cert.pem",
                "-CAkey", "private/ca.key.pem", "-CAcreateserial", "-days", "30",
                "-extfile", f"{name}.ext", "-out", f"certs/{name}.cert.pem")


class EchoServer:
    """Single-threaded selector echo server (holds thousands of idle connections cheaply)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    try:
                        connection, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    connection.setblocking(False)
                    self.selector.register(connection, selectors.EVENT_READ)
                    continue
                connection = key.fileobj
                try:
                    data = connection.recv(65536)
                except (BlockingIOError, ConnectionError):
                    data = b"" if not isinstance(sys.exc_info()[1], BlockingIOError) else None
                if data is None:
                    continue
                if not data:
                    self.selector.unregister(connection)
                    connection.close()
                    continue
                try:
                    connection.setblocking(True)
                    connection.sendall(data)
                    connection.setblocking(False)
                except OSError:
                    self.selector.unregister(connection)
                    connection.close()


class SinkServer:
    """Reads STREAM_BYTES per connection, then answers one byte."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            connection, _ = self.listener.accept()
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    @staticmethod
    def serve(connection):
        buffer = bytearray(1 << 20)
        remaining = STREAM_BYTES
        while remaining > 0:
            read = connection.recv_into(buffer)
            if read == 0:
                return
            remaining -= read
        connection.sendall(b"!")
        connection.close()


def wait_port(port, process, log):
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"process exited early; log {log}:\n" + open(log).read())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}; log {log}:\n" + open(log).read())


class Stack:
    """A server and a client of one implementation, with -L tcp to the echo and sink."""

    def __init__(self, name, binary, pki, workdir, echo_port, sink_port, tls=True,
                 client_extra=()):
        self.name = name
        server_port = free_port()
        self.echo_local = free_port()
        self.sink_local = free_port()
        url = f"{'wss' if tls else 'ws'}://127.0.0.1:{server_port}"
        cert = lambda n: os.path.join(pki, "certs", f"{n}.cert.pem")
        key = lambda n: os.path.join(pki, "private", f"{n}.pem")
        server_args = ["server", url]
        client_args = ["client", *client_extra,
                       "-L", f"tcp://{self.echo_local}:127.0.0.1:{echo_port}",
                       "-L", f"tcp://{self.sink_local}:127.0.0.1:{sink_port}", url]
        if tls:
            server_args[1:1] = ["--tls-certificate", cert("wstunnel-server"),
                                "--tls-private-key", key("wstunnel-server"),
                                "--tls-client-ca-certs", cert("ca")]
            client_args[1:1] = ["--tls-certificate", cert("bench-client"),
                                "--tls-private-key", key("bench-client")]
        file_name = "".join(c if c.isalnum() else "-" for c in name)
        self.server_log = os.path.join(workdir, f"{file_name}-server.log")
        self.client_log = os.path.join(workdir, f"{file_name}-client.log")
        quiet = {**os.environ, "RUST_LOG": "warn"}
        self.server = subprocess.Popen([binary, *server_args], env=quiet,
                                       stdout=open(self.server_log, "w"), stderr=subprocess.STDOUT)
        wait_port(server_port, self.server, self.server_log)
        self.client = subprocess.Popen([binary, *client_args], env=quiet,
                                       stdout=open(self.client_log, "w"), stderr=subprocess.STDOUT)
        wait_port(self.echo_local, self.client, self.client_log)
        wait_port(self.sink_local, self.client, self.client_log)

    def stop(self):
        for process in (self.client, self.server):
            process.terminate()
            process.wait()


def stream_seconds(port):
    """Sends STREAM_BYTES to the sink through `port`; seconds until the sink's answer."""
    chunk = b"\xa5" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as connection:
        start = time.perf_counter()
        remaining = STREAM_BYTES
        while remaining > 0:
            piece = chunk if remaining >= len(chunk) else chunk[:remaining]
            connection.sendall(piece)
            remaining -= len(piece)
        if connection.recv(1) != b"!":
            raise RuntimeError("sink did not confirm the transfer")
        return time.perf_counter() - start


def short_tunnel(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        message = b"x" * 32
        connection.sendall(message)
        received = b""
        while len(received) < len(message):
            data = connection.recv(64)
            if not data:
                raise RuntimeError("tunnel closed before the echo")
            received += data


def sequential_rate(port):
    start = time.perf_counter()
    for _ in range(SEQUENTIAL_TUNNELS):
        short_tunnel(port)
    return SEQUENTIAL_TUNNELS / (time.perf_counter() - start)


def parallel_rate(port):
    errors = []

    def worker():
        try:
            for _ in range(PARALLEL_PER_WORKER):
                short_tunnel(port)
        except Exception as error:  # counted and reported, not hidden
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(PARALLEL_WORKERS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} short tunnels failed: {errors[0]}")
    return PARALLEL_WORKERS * PARALLEL_PER_WORKER / elapsed


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle_memory(stack):
    """Server RSS before and with IDLE_TUNNELS open tunnels (each proven by a round trip)."""
    before = rss_kib(stack.server.pid)
    connections = []
    for _ in range(IDLE_TUNNELS):
        connection = socket.create_connection(("127.0.0.1", stack.echo_local))
        connection.sendall(b"idle")
        received = b""
        while len(received) < 4:
            data = connection.recv(16)
            if not data:
                raise RuntimeError("idle tunnel closed")
            received += data
        connections.append(connection)
    time.sleep(1)
    with_tunnels = rss_kib(stack.server.pid)
    for connection in connections:
        connection.close()
    time.sleep(1)
    return before, with_tunnels


def interleaved(stacks, measure, runs):
    """Runs `measure(stack)` `runs` times for each stack, alternating stacks within each round
    so that background load on the machine hits every implementation alike."""
    values = {stack.name: [] for stack in stacks}
    for _ in range(runs):
        for stack in stacks:
            values[stack.name].append(measure(stack))
    return {name: (statistics.median(runs), runs) for name, runs in values.items()}


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with tempfile.TemporaryDirectory() as workdir:
        pki = os.path.join(workdir, "pki")
        make_pki(pki)
        echo, sink = EchoServer(), SinkServer()
        mib = STREAM_BYTES / (1 << 20)

        implementations = [("ours", OURS)] + ([("upstream", UPSTREAM)] if UPSTREAM else [])
        started = []  # every stack, stopped at the end even when a later one fails to start

        def start(*args, **kwargs):
            stack = Stack(*args, **kwargs)
            started.append(stack)
            return stack

        class Direct:
            name = "direct"
            sink_local = sink.port

        try:
            stacks = [start(name, binary, pki, workdir, echo.port, sink.port)
                      for name, binary in implementations]
            no_tls = start("ours ws://", OURS, pki, workdir, echo.port, sink.port, tls=False)
            pooled = [start(f"{name} -c 4", binary, pki, workdir, echo.port, sink.port,
                            client_extra=("--connection-min-idle", "4"))
                      for name, binary in implementations]
            results = {}
            throughput = interleaved([Direct()] + stacks + [no_tls],
                                     lambda stack: mib / stream_seconds(stack.sink_local), RUNS)
            for name, (median, runs) in throughput.items():
                print(f"{name:14} throughput  {median:9.1f} MiB/s     runs {fmt(runs)}")
                results.setdefault(name, {})["throughput"] = median
            for figure, label, measure in (
                ("sequential", "1 at a time", lambda stack: sequential_rate(stack.echo_local)),
                ("parallel", "32 at once ", lambda stack: parallel_rate(stack.echo_local)),
            ):
                measured = interleaved(stacks + pooled + [no_tls], measure, RUNS)
                for name, (median, runs) in measured.items():
                    print(f"{name:14} {label} {median:9.1f} tunnels/s runs {fmt(runs)}")
                    results.setdefault(name, {})[figure] = median
            # Fresh servers: a server's RSS after the load above depends on how its allocator
            # kept what that load used.
            for stack in stacks:
                stack.stop()
            stacks = [start(name, binary, pki, workdir, echo.port, sink.port)
                      for name, binary in implementations]
            for stack in stacks:
                before, with_tunnels = idle_memory(stack)
                results[stack.name]["memory"] = with_tunnels
                print(f"{stack.name:14} server RSS  {before / 1024:9.1f} MiB idle, "
                      f"{with_tunnels / 1024:.1f} MiB with {IDLE_TUNNELS} open tunnels")
        finally:
            for stack in started:
                stack.stop()

        ours, direct = results["ours"], results["direct"]["throughput"]
        print()
        print(f"ours/direct throughput            {ours['throughput'] / direct:6.2f}  "
              "(target >= 0.5)")
        print(f"  same relay without TLS (ws://)  "
              f"{results['ours ws://']['throughput'] / direct:6.2f}  "
              "(the ceiling of two relay processes on this machine)")
        if "upstream" in results:
            upstream = results["upstream"]
            for figure, label, target in (
                ("throughput", "throughput   ", ">= 1.2"),
                ("sequential", "1 at a time  ", ">= 1.5"),
                ("parallel", "32 at once   ", ">= 1.5"),
                ("memory", "memory       ", "<= 1.0"),
            ):
                ratio = ours[figure] / upstream[figure]
                print(f"ours/upstream {label}       {ratio:6.2f}  (target {target})")
            for figure, label in (("sequential", "1 at a time"), ("parallel", "32 at once ")):
                pooled_ratio = results["ours -c 4"][figure] / results["upstream -c 4"][figure]
                no_tls_ratio = results["ours ws://"][figure] / upstream[figure]
                print(f"  {label}: both with -c 4 {pooled_ratio:6.2f}; "
                      f"ours without TLS vs upstream with TLS {no_tls_ratio:6.2f}")
        else:
            print("upstream: skipped (set UPSTREAM_WSTUNNEL to an upstream wstunnel binary)")


def fmt(values):
    return " ".join(f"{value:.1f}" for value in values)


if __name__ == "__main__":
    main()
