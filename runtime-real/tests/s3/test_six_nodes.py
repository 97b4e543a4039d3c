"""The six-node suite: six real `hamster cluster run` processes over loopback mTLS, each
serving S3, storing 4+2 objects under a mixed workload while nodes are killed with
SIGKILL. Reads reconstruct around the loss; with one node down writes ack at the floor
(5 of 6 shards sealed); with two down writes refuse with 503 SlowDown while reads keep
serving from exactly k; after restarts every acknowledged object reads back byte-exact.
Before the kills, repair heals two rotted shards of one object, a node whose data disk
was emptied and a write made with that node down, with no client read; with two other
nodes killed every object reads back from the healed shards. An object left with fewer
than k good shards is listed lost and answers 410 ObjectLost, and leaves the list once
its holders return. The compatibility suite (aws CLI, rclone, restic, s3cmd) then runs through a follower.

The tests share one cluster and run in file order: each one starts from the state the
previous one left (which nodes are down is part of it).
"""

import concurrent.futures
import hashlib
import os
import random
import re
import subprocess
import tempfile
import threading
import time
import uuid

import botocore.exceptions
import pytest

from conftest import ACCESS_KEY, SECRET_KEY, Server, client_env, error_code, hamster_bin

NODES = 6
MiB = 1 << 20
# Bounds of the mixed workload (count and time).
WORKLOAD_OPS_MAX = 240
WORKLOAD_SECONDS_MAX = 60
SETTLE_TIMEOUT_S = 60


class Node(Server):
    """One `hamster cluster run` process with its S3 endpoint; restartable."""

    def __init__(self, cluster_dir, node_id):
        self.node_id = node_id
        self.config = os.path.join(cluster_dir, f"node{node_id}.toml")
        self.shard_dir = os.path.join(cluster_dir, f"node{node_id}-data", "shards")
        super().__init__(os.path.join(cluster_dir, f"node{node_id}-data"))
        self.log_path = os.path.join(cluster_dir, f"node{node_id}.log")

    def command(self):
        return [hamster_bin(), "cluster", "run", "--config", self.config,
                "--s3", f"127.0.0.1:{self.port}", *self.extra_args]

    def up(self):
        return self.proc is not None and self.proc.poll() is None

    def data_ids(self):
        """The blobs this node holds a sealed shard of."""
        try:
            names = os.listdir(self.shard_dir)
        except FileNotFoundError:
            return set()
        return {n.split(".")[0] for n in names if n.endswith(".shard")}


class Cluster:
    def __init__(self, tmp, nodes=NODES):
        self.dir = os.path.join(tmp, f"cluster{nodes}")
        subprocess.run([hamster_bin(), "cluster", "init", "--nodes", str(nodes),
                        "--out", self.dir, "--base-port", "0"],
                       check=True, capture_output=True)
        self.nodes = {i: Node(self.dir, i) for i in range(1, nodes + 1)}

    def start(self):
        for n in self.nodes.values():
            n.start()
        return self

    def stop(self):
        for n in self.nodes.values():
            n.stop()

    def live(self):
        return [n for n in self.nodes.values() if n.up()]

    def status(self):
        out = subprocess.run(
            [hamster_bin(), "admin", "status", "--config", os.path.join(self.dir, "admin.toml")],
            capture_output=True, text=True, timeout=30)
        return out.stdout

    def leader(self):
        m = re.search(r"leader: node (\d+)", self.status())
        return int(m.group(1)) if m else None

    def elected(self, timeout_s=SETTLE_TIMEOUT_S):
        """The leader, once there is one (a test run on its own meets a cluster that
        has just started and may not have elected one yet)."""
        deadline = time.time() + timeout_s
        while (leader := self.leader()) is None:
            assert time.time() < deadline, f"no leader within {timeout_s} s\n{self.status()}"
            time.sleep(0.2)
        return leader

    def logs(self):
        return "\n".join(f"--- node {i}\n{n.log()[-1500:]}" for i, n in self.nodes.items())


def retrying(fn, timeout_s=SETTLE_TIMEOUT_S):
    """Calls fn until it succeeds, retrying what a client retries (503, connection loss)."""
    deadline = time.time() + timeout_s
    while True:
        try:
            return fn()
        except (botocore.exceptions.ClientError,
                botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ReadTimeoutError) as e:
            retryable = not isinstance(e, botocore.exceptions.ClientError) or \
                e.response["ResponseMetadata"]["HTTPStatusCode"] >= 500
            if not retryable or time.time() > deadline:
                raise
            time.sleep(0.3)


def body(size, seed):
    return random.Random(seed).randbytes(size)


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Store:
    """What the tests stored and had acknowledged: key -> sha256 of the body."""

    def __init__(self):
        self.acked = {}
        self.lock = threading.Lock()

    def put(self, node, bucket, key, data):
        node.client().put_object(Bucket=bucket, Key=key, Body=data)
        with self.lock:
            self.acked[key] = sha(data)

    def check_all(self, cluster, bucket):
        """Every acknowledged object reads back byte-exact through every live node."""
        live = cluster.live()
        for i, (key, digest) in enumerate(sorted(self.acked.items())):
            node = live[i % len(live)]
            got = retrying(lambda: node.client().get_object(Bucket=bucket, Key=key)["Body"].read())
            assert sha(got) == digest, f"{key} via node {node.node_id}: wrong bytes"


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory(prefix="hamster-six-") as tmp:
        c = Cluster(tmp).start()
        try:
            yield c
        finally:
            c.stop()


@pytest.fixture(scope="module")
def store():
    return Store()


@pytest.fixture(scope="module")
def bucket(cluster):
    name = "six-" + uuid.uuid4().hex[:12]
    retrying(lambda: cluster.nodes[2].client().create_bucket(Bucket=name))
    return name


def new_ids(cluster, before):
    return {i: n.data_ids() - before.get(i, set()) for i, n in cluster.nodes.items()}


def test_objects_are_4_plus_2_on_six_distinct_nodes(cluster, bucket, store):
    before = {i: n.data_ids() for i, n in cluster.nodes.items()}
    data = body(5 * MiB + 12345, 1)
    store.put(cluster.nodes[2], bucket, "big", data)
    fresh = new_ids(cluster, before)
    blob_ids = set().union(*fresh.values())
    assert len(blob_ids) == 1, fresh
    assert all(len(ids) == 1 for ids in fresh.values()), \
        f"one shard of the 4+2 object on each of the six nodes: {fresh}"
    for n in cluster.nodes.values():
        got = n.client().get_object(Bucket=bucket, Key="big")["Body"].read()
        assert got == data, f"node {n.node_id}"
    ranged = cluster.nodes[5].client().get_object(
        Bucket=bucket, Key="big", Range="bytes=3000000-4100000")["Body"].read()
    assert ranged == data[3000000:4100001]

    # A small object is stored as replicas (k = 1): 1+2 on three distinct nodes.
    before = {i: n.data_ids() for i, n in cluster.nodes.items()}
    small = body(100 * 1024, 2)
    store.put(cluster.nodes[4], bucket, "small", small)
    holders = [i for i, ids in new_ids(cluster, before).items() if ids]
    assert len(holders) == 3, holders


def test_followers_coordinate_multipart_and_copy(cluster, bucket, store):
    leader = cluster.elected()
    follower = next(n for i, n in cluster.nodes.items() if i != leader)
    s3 = follower.client()
    parts = [body(5 * MiB, 10), body(5 * MiB, 11), body(1 * MiB + 7, 12)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="multi")
    done = []
    for i, p in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="multi", UploadId=up["UploadId"], PartNumber=i, Body=p)
        done.append({"PartNumber": i, "ETag": r["ETag"]})
    out = s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=up["UploadId"],
                                       MultipartUpload={"Parts": done})
    assert out["ETag"].strip('"').endswith("-3")
    whole = b"".join(parts)
    store.acked["multi"] = sha(whole)
    s3.copy_object(Bucket=bucket, Key="multi-copy", CopySource={"Bucket": bucket, "Key": "multi"})
    store.acked["multi-copy"] = sha(whole)
    other = cluster.nodes[leader]
    got = other.client().get_object(Bucket=bucket, Key="multi-copy")["Body"].read()
    assert got == whole


def test_a_policy_set_through_one_node_is_in_force_on_every_node(cluster):
    """Bucket policies and ACLs are replicated: a policy acknowledged by one node admits
    (and its removal refuses) anonymous requests through every other, at once."""
    import json
    name = "pol-" + uuid.uuid4().hex[:12]
    leader = cluster.elected()
    follower = next(n for i, n in cluster.nodes.items() if i != leader)
    s3 = follower.client()
    retrying(lambda: s3.create_bucket(Bucket=name))
    s3.put_object(Bucket=name, Key="pub/a", Body=b"public")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{name}/pub/*"}]}
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    for n in cluster.nodes.values():
        anon = n.client(signature_version=botocore.UNSIGNED)
        assert anon.get_object(Bucket=name, Key="pub/a")["Body"].read() == b"public"
    cluster.nodes[leader].client().delete_bucket_policy(Bucket=name)
    for n in cluster.nodes.values():
        anon = n.client(signature_version=botocore.UNSIGNED)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            anon.get_object(Bucket=name, Key="pub/a")
        assert e.value.response["Error"]["Code"] == "AccessDenied", n.node_id
    # Keys through the admin certificate, as every other admin command: a key made and
    # granted that way reads through every node.
    made = admin(cluster, "key", "create", "six-app").splitlines()
    ak, sk = (line.split(": ", 1)[1] for line in made)
    assert admin(cluster, "key", "allow", ak, name, "--read") == "done\n"
    for n in cluster.nodes.values():
        got = n.client(ak, sk).get_object(Bucket=name, Key="pub/a")["Body"].read()
        assert got == b"public", n.node_id
    assert "six-app" in admin(cluster, "key", "list")
    # The object stays: deleting it would leave an orphan shard for the sweep, which the
    # repair test below (it empties a node and expects every file back) must not see.


def test_repair_heals_rot_an_emptied_node_and_degraded_writes_without_reads(cluster, bucket, store):
    # Small objects (1+2 replicas on three of the six nodes), so that some are not on
    # node 6. These tests run before any node is killed: no write was cut off, so every
    # shard on node 6 belongs to a committed object and must come back.
    for i in range(12):
        store.put(cluster.nodes[1], bucket, f"small-{i}", body(3000 + i, 60 + i))
    # Two shards of one object rot on disk, unread: a small object that node 6, about
    # to lose its disk, does not hold, so that the damage stays within the parity.
    holders = {}
    for i, n in cluster.nodes.items():
        for blob in n.data_ids():
            holders.setdefault(blob, set()).add(i)
    blob, nodes = next((b, h) for b, h in sorted(holders.items()) if len(h) == 3 and 6 not in h)
    rotted_on = sorted(nodes)[:2]
    originals = {}
    for i in rotted_on:
        name, path = next((n, p) for n, p in shard_files(cluster.nodes[i]).items()
                          if n.startswith(blob))
        originals[(i, name)] = read(path)
        rot(path, 80)  # the first data byte
        assert read(path) != originals[(i, name)]
    # Node 6 gets a new, empty data disk (its Raft state stays) while it is stopped.
    six = cluster.nodes[6]
    six.stop()
    emptied = dict((n, read(p)) for n, p in shard_files(six).items())
    assert emptied, "node 6 held shards"
    for path in shard_files(six).values():
        os.remove(path)
    # A write with node 6 down acks at the floor: its shard there is owed.
    node = cluster.nodes[rotted_on[0]]
    data = body(3 * MiB + 5, 50)
    retrying(lambda: store.put(node, bucket, "written-degraded", data))
    six.start()
    started = admin(cluster, "repair", "start")
    assert started.count("full scrub pass started") == NODES, started
    # Without any GET, the files heal: byte-identical to what was lost.
    deadline = time.time() + 180
    while time.time() < deadline:
        now6 = shard_files(six)
        rotted_ok = all(read(os.path.join(cluster.nodes[i].shard_dir, n)) == b
                        for (i, n), b in originals.items())
        refilled = all(n in now6 and read(now6[n]) == b for n, b in emptied.items())
        backfilled = len(now6) >= len(emptied) + 1
        if rotted_ok and refilled and backfilled:
            break
        time.sleep(1)
    else:
        pytest.fail(f"not healed in time: rotted {rotted_ok}, refilled {refilled}, "
                    f"backfilled {backfilled}\n{admin(cluster, 'repair', 'status')}\n{cluster.logs()}")
    status = admin(cluster, "repair", "status")
    rebuilt = sum(int(m) for m in re.findall(r"rebuilt: (\d+) shards", status))
    assert rebuilt >= len(emptied) + 3, status
    assert "no lost objects" in admin(cluster, "lost")
    # Two *other* nodes die: every object now reads from the healed shards (each 4+2
    # object from the four left, node 6's refilled one among them; the rotted replicas
    # from their healed files).
    others = [i for i in cluster.nodes if i not in rotted_on and i != 6][:2]
    for i in others:
        cluster.nodes[i].kill9()
    store.check_all(cluster, bucket)
    for i in others:
        cluster.nodes[i].start()


def test_an_object_below_k_is_lost_and_leaves_the_list_when_its_holders_return(
        cluster, bucket, store):
    # A 4+2 object (a shard on every node): one shard rots on node 1 and two other
    # holders die, so 3 good shards are left, fewer than k = 4.
    blob = next(b for b, h in sorted(holders_of(cluster).items()) if len(h) == NODES)
    path = next(p for n, p in shard_files(cluster.nodes[1]).items() if n.startswith(blob))
    original = read(path)
    rot(path, 80)
    for i in (3, 4):
        cluster.nodes[i].kill9()
    node1 = cluster.nodes[1]
    retrying(lambda: node1.client().head_bucket(Bucket=bucket))
    admin(cluster, "repair", "start")
    wait_for("the object listed lost", lambda: bucket in admin(cluster, "lost"))
    line = next(l for l in admin(cluster, "lost").splitlines() if l.startswith(bucket))
    key, good = line.split()[1], line.split()[3]
    assert good == "3/4", line
    with pytest.raises(botocore.exceptions.ClientError) as e:
        node1.client().get_object(Bucket=bucket, Key=key)
    assert (error_code(e), e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == \
        ("ObjectLost", 410)
    # The holders come back: the object reads again, leaves the list, and its rotted
    # shard is rebuilt.
    for i in (3, 4):
        cluster.nodes[i].start()
    wait_for("the lost mark cleared", lambda: "no lost objects" in admin(cluster, "lost"))
    wait_for("the rotted shard healed", lambda: read(path) == original)
    store.check_all(cluster, bucket)


def test_mixed_workload_while_a_node_is_killed(cluster, bucket, store):
    stop = threading.Event()
    errors = []
    victim = cluster.nodes[3]

    def worker(w):
        rng = random.Random(w)
        ops = 0
        deadline = time.time() + WORKLOAD_SECONDS_MAX
        while not stop.is_set() and ops < WORKLOAD_OPS_MAX // 4 and time.time() < deadline:
            ops += 1
            node = rng.choice(cluster.live())
            try:
                if rng.random() < 0.6 or not store.acked:
                    size = rng.choice([0, 1, 4096, 200 * 1024, 1 * MiB + 3, 3 * MiB])
                    key = f"w{w}-{ops}"
                    store.put(node, bucket, key, body(size, hash(key) & 0xffffffff))
                else:
                    with store.lock:
                        key, digest = rng.choice(sorted(store.acked.items()))
                    got = node.client().get_object(Bucket=bucket, Key=key)["Body"].read()
                    if sha(got) != digest:
                        errors.append(f"WRONG BYTES for {key} via node {node.node_id}")
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
                pass  # the node died mid-request, or a leader change: not acknowledged

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(worker, w) for w in range(4)]
        time.sleep(2)
        victim.kill9()
        for f in futures:
            f.result(timeout=WORKLOAD_SECONDS_MAX + 60)
    assert not errors, errors
    assert len(store.acked) > 10, "the workload made progress with a node down"
    # Reads reconstruct around the lost node.
    store.check_all(cluster, bucket)


def test_one_node_down_writes_ack_at_the_floor(cluster, bucket, store):
    assert len(cluster.live()) == NODES - 1
    before = {i: n.data_ids() for i, n in cluster.nodes.items()}
    data = body(2 * MiB + 1, 20)
    retrying(lambda: store.put(cluster.live()[0], bucket, "at-floor", data))
    holders = [i for i, ids in new_ids(cluster, before).items() if ids]
    assert len(holders) == 5, f"5 of 6 shards sealed with one node down: {holders}"
    assert 3 not in holders
    got = cluster.live()[-1].client().get_object(Bucket=bucket, Key="at-floor")["Body"].read()
    assert got == data


def test_two_down_writes_refuse_and_reads_serve_from_k(cluster, bucket, store):
    cluster.nodes[5].kill9()
    assert len(cluster.live()) == NODES - 2
    node = cluster.live()[0]
    # The leader may have died: wait for one, then the write must be refused, not lost.
    retrying(lambda: node.client().head_bucket(Bucket=bucket))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        node.client().put_object(Bucket=bucket, Key="refused", Body=body(2 * MiB, 30))
    assert error_code(e) == "SlowDown"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(botocore.exceptions.ClientError) as e:
        node.client().head_object(Bucket=bucket, Key="refused")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Every 4+2 object has exactly k = 4 shards left on the live nodes; reads serve.
    store.check_all(cluster, bucket)


def test_after_restarts_every_acknowledged_object_reads_back(cluster, bucket, store):
    for i in (3, 5):
        cluster.nodes[i].start()
    assert len(cluster.live()) == NODES
    store.check_all(cluster, bucket)
    before = {i: n.data_ids() for i, n in cluster.nodes.items()}
    retrying(lambda: store.put(cluster.nodes[5], bucket, "healthy-again", body(2 * MiB, 40)))
    holders = [i for i, ids in new_ids(cluster, before).items() if ids]
    assert len(holders) == 6, holders
    with pytest.raises(botocore.exceptions.ClientError) as e:
        cluster.nodes[1].client().head_object(Bucket=bucket, Key="refused")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def admin(cluster, *args):
    out = subprocess.run(
        [hamster_bin(), "admin", *args, "--config", os.path.join(cluster.dir, "admin.toml")],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"admin {args}: {out.stdout}\n{out.stderr}"
    return out.stdout


def shard_files(node):
    return {n: os.path.join(node.shard_dir, n) for n in os.listdir(node.shard_dir)
            if n.endswith(".shard")}


def rot(path, offset):
    """Flips one byte of a shard file in place, as a failing disk would."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def wait_for(what, check, timeout_s=120):
    deadline = time.time() + timeout_s
    while not check():
        if time.time() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(0.5)


def holders_of(cluster):
    """Blob id -> the nodes holding a shard of it."""
    holders = {}
    for i, n in cluster.nodes.items():
        for blob in n.data_ids():
            holders.setdefault(blob, set()).add(i)
    return holders


def test_compatibility_suite_through_a_follower(cluster):
    leader = cluster.elected()
    follower = next(n for i, n in cluster.nodes.items() if i != leader)
    env = client_env()
    env.update(HAMSTER_ENDPOINT=follower.endpoint, HAMSTER_ACCESS_KEY=ACCESS_KEY,
               HAMSTER_SECRET_KEY=SECRET_KEY, HAMSTER_BIN=hamster_bin())
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    out = subprocess.run(["bash", "scripts/compat.sh"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}\n{cluster.logs()}"
