"""Operating a cluster: three `hamster cluster run` nodes serving S3 over HTTPS, each with
its metrics endpoint. Readiness follows the cluster (ready with a leader and every
member reachable; not ready once a member is down and writes would fall below the
floor; ready again once it is back), metrics move on the nodes that hold the shards,
and `hamster admin status` shows every node's disk, shards, version and uptime."""

import os
import tempfile
import time

import boto3
import botocore.config
import pytest

from conftest import ACCESS_KEY, SECRET_KEY, client_env, free_port
from test_operate import http_get, make_certificates, samples, wait_for
from test_six_nodes import Cluster


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory(prefix="hamster-opsc-") as tmp:
        ca, cert, key = make_certificates(tmp)
        c = Cluster(tmp, nodes=3)
        for n in c.nodes.values():
            n.metrics = f"http://127.0.0.1:{free_port()}"
            n.extra_args = ["--tls-cert", cert, "--tls-key", key,
                            "--metrics", n.metrics.removeprefix("http://")]
            n.endpoint = f"https://127.0.0.1:{n.port}"
        c.ca = ca
        c.start()
        try:
            yield c
        finally:
            c.stop()


def client(cluster, node):
    cfg = botocore.config.Config(s3={"addressing_style": "path"},
                                 retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", endpoint_url=node.endpoint, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=cfg, verify=cluster.ca)


def ready(node):
    return http_get(node.metrics + "/ready")


def test_every_node_becomes_ready(cluster):
    for n in cluster.nodes.values():
        wait_for(lambda: ready(n)[0] == 200, f"node {n.node_id} ready", timeout=30)
        assert http_get(n.metrics + "/health") == (200, "ok\n")


def test_shard_metrics_move_on_every_holder(cluster):
    before = {i: samples(http_get(n.metrics + "/metrics")[1]) for i, n in cluster.nodes.items()}
    follower = next(n for n in cluster.nodes.values()
                    if samples(http_get(n.metrics + "/metrics")[1])["hamster_raft_is_leader"] == 0)
    s3 = client(cluster, follower)
    s3.create_bucket(Bucket="ops")
    data = os.urandom(1 << 20)  # 2+1 on three nodes: a shard on every node
    for i in range(4):
        s3.put_object(Bucket="ops", Key=f"k{i}", Body=data)
        assert s3.get_object(Bucket="ops", Key=f"k{i}")["Body"].read() == data
    for i, n in cluster.nodes.items():
        after = samples(http_get(n.metrics + "/metrics")[1])
        moved = after["hamster_shard_writes_total"] - before[i]["hamster_shard_writes_total"]
        assert moved == 4, f"node {i}: {moved} shards sealed"
        assert after["hamster_raft_commit_index"] >= before[i]["hamster_raft_commit_index"] + 4
        assert after["hamster_node_members"] == 3
    f = samples(http_get(follower.metrics + "/metrics")[1])
    assert f['hamster_s3_requests_total{operation="PutObject",status="200"}'] == 4
    # The follower proposed the four commits through the leader.
    assert f["hamster_raft_proposal_duration_seconds_count"] >= 4


def test_the_leader_answers_reads_from_its_lease(cluster):
    leader = next(n for n in cluster.nodes.values()
                  if samples(http_get(n.metrics + "/metrics")[1])["hamster_raft_is_leader"] == 1)
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    s3 = client(cluster, follower)
    s3.create_bucket(Bucket="lease")
    s3.put_object(Bucket="lease", Key="k", Body=b"x" * 100)
    before = samples(http_get(leader.metrics + "/metrics")[1])
    # Back-to-back GETs through a follower: the first needs a heartbeat round, the
    # next ones come well inside the lease it took.
    for _ in range(20):
        assert s3.get_object(Bucket="lease", Key="k")["Body"].read() == b"x" * 100
    after = samples(http_get(leader.metrics + "/metrics")[1])
    moved = {name: after[name] - before[name]
             for name in ("hamster_raft_lease_reads_total", "hamster_raft_read_rounds_total")}
    assert sum(moved.values()) >= 20, moved
    assert moved["hamster_raft_lease_reads_total"] >= 1, moved


def test_readiness_follows_the_write_floor(cluster):
    nodes = list(cluster.nodes.values())
    victim, watched = nodes[2], nodes[0]
    victim.stop()
    try:
        # 2+1 needs all three shards sealed (k+1 = 3): one member down is below it.
        status, body = wait_for(lambda: ready(watched)[0] == 503 and ready(watched),
                                "readiness to drop with a member down", timeout=30)
        assert "below the write floor" in body or "no Raft leader" in body, body
        m = samples(http_get(watched.metrics + "/metrics")[1])
        assert m["hamster_node_ready"] == 0
        assert m["hamster_node_members_reachable"] <= 2
    finally:
        victim.start()
    wait_for(lambda: ready(watched)[0] == 200, "readiness back with every member", timeout=40)


def test_admin_status_table_has_every_node(cluster):
    import subprocess
    from conftest import hamster_bin
    out = subprocess.run(
        [hamster_bin(), "admin", "status", "--config", os.path.join(cluster.dir, "admin.toml")],
        capture_output=True, text=True, timeout=30, env=client_env())
    assert out.returncode == 0, out.stderr
    rows = [l.split() for l in out.stdout.splitlines()[3:]]
    assert [r[0] for r in rows] == ["1", "2", "3"], out.stdout
    assert all(r[2] == "yes" for r in rows), out.stdout
    assert sum(r[3] == "Leader" for r in rows) == 1, out.stdout
    version = subprocess.run([hamster_bin(), "version"], capture_output=True,
                             text=True).stdout.split()[1]
    assert all(version in r for r in rows), out.stdout
