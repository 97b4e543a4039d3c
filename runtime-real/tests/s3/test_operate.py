"""Operating `hamster server`: Prometheus metrics that move with the traffic sent,
/health and /ready, `hamster admin status`, logs without colour codes in a file and as
JSON, and S3 over HTTPS (boto3 and the aws CLI given the CA; plain HTTP refused)."""

import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import ACCESS_KEY, SECRET_KEY, Server, client_env, free_port, hamster_bin


def http_get(url, timeout=5):
    """(status, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text):
    """{'name{labels}': value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def wait_for(predicate, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def ops_server():
    with tempfile.TemporaryDirectory(prefix="hamster-ops-") as tmp:
        metrics_port = free_port()
        s = Server(os.path.join(tmp, "data"),
                   ["--metrics", f"127.0.0.1:{metrics_port}"]).start()
        s.metrics = f"http://127.0.0.1:{metrics_port}"
        try:
            yield s
        finally:
            s.stop()


def scrape(server):
    status, body = http_get(server.metrics + "/metrics")
    assert status == 200, body
    assert body.rstrip().endswith("# EOF"), body[-200:]
    return samples(body)


def test_metrics_move_with_the_traffic_sent(ops_server):
    s3 = ops_server.client()
    s3.create_bucket(Bucket="metered")
    before = scrape(ops_server)
    body = os.urandom(300 * 1024)
    for i in range(3):
        s3.put_object(Bucket="metered", Key=f"k{i}", Body=body)
    for i in range(2):
        assert s3.get_object(Bucket="metered", Key=f"k{i}")["Body"].read() == body
    bad = ops_server.client(secret_key="wrong-secret-key-wrong-secret-key-0000")
    with pytest.raises(botocore.exceptions.ClientError):
        bad.get_object(Bucket="metered", Key="k0")
    after = scrape(ops_server)

    def moved(key):
        return after.get(key, 0) - before.get(key, 0)

    assert moved('hamster_s3_requests_total{operation="PutObject",status="200"}') == 3
    assert moved('hamster_s3_requests_total{operation="GetObject",status="200"}') == 2
    # A request refused before routing (a bad signature) is counted, with its status.
    assert moved('hamster_s3_requests_total{operation="Unknown",status="403"}') == 1
    assert moved('hamster_s3_request_duration_seconds_count{operation="PutObject"}') == 3
    assert moved("hamster_s3_received_bytes_total") >= 3 * len(body)
    assert moved("hamster_s3_sent_bytes_total") >= 2 * len(body)
    # 1+0 on one node: every PUT seals one shard; every GET reads its bytes back.
    assert moved("hamster_shard_writes_total") == 3
    assert moved("hamster_shard_written_bytes_total") >= 3 * len(body)
    assert moved("hamster_shard_read_bytes_total") >= 2 * len(body)
    assert moved("hamster_raft_proposal_duration_seconds_count") >= 3
    assert after["hamster_raft_term"] >= 1
    assert after["hamster_raft_is_leader"] == 1
    assert after["hamster_raft_leader_changes_total"] >= 1
    assert after["hamster_raft_applied_index"] >= before["hamster_raft_applied_index"] + 3
    assert after["hamster_node_disk_total_bytes"] > 0
    assert after["hamster_shard_verify_failures_total"] == 0
    assert after["hamster_data_path_floor_refusals_total"] == 0


def test_health_and_readiness(ops_server):
    assert http_get(ops_server.metrics + "/health") == (200, "ok\n")
    status, body = http_get(ops_server.metrics + "/ready")
    assert status == 200 and body.startswith("ready: leader 1"), body
    assert http_get(ops_server.metrics + "/nothing")[0] == 404


def test_admin_status_shows_capacity_shards_version_uptime(ops_server):
    s3 = ops_server.client()
    s3.create_bucket(Bucket="counted")
    s3.put_object(Bucket="counted", Key="one", Body=b"x" * 1000)
    # The shard count comes from repair's presence pass (every 5 s).
    def shards():
        out = subprocess.run(
            [hamster_bin(), "admin", "status", "--data", ops_server.data_dir],
            capture_output=True, text=True, timeout=30, env=client_env())
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "leader: node 1, term " + lines[0].split()[-1], out.stdout
        header = lines[2].split()
        assert header == ["NODE", "ADDRESS", "UP", "ROLE", "TERM", "COMMIT", "APPLIED",
                          "SHARDS", "USED", "FREE", "VERSION", "UPTIME"], out.stdout
        row = lines[3].split()
        assert row[2] == "yes" and row[3] == "Leader", out.stdout
        version = subprocess.run([hamster_bin(), "version"], capture_output=True,
                                 text=True).stdout.split()[1]
        assert version in row, out.stdout
        assert re.search(r"\(\d+%\)", lines[3]), out.stdout
        return int(row[7]) > 0 and out.stdout
    wait_for(shards, "admin status to count the shard", timeout=20)


def test_logs_in_a_file_carry_no_colour_and_json_logs_parse():
    with tempfile.TemporaryDirectory(prefix="hamster-logs-") as tmp:
        text = Server(os.path.join(tmp, "text")).start()
        text.stop()
        log = open(text.log_path, "rb").read()
        assert b"hamster server ready" in log, log
        assert b"\x1b[" not in log, log[:500]
        js = Server(os.path.join(tmp, "json"), ["--log-format", "json"]).start()
        js.stop()
        lines = [l for l in open(js.log_path).read().splitlines() if l.startswith("{")]
        events = [json.loads(l) for l in lines]
        assert any(e.get("message") == "hamster server ready" for e in events), lines
        assert all("level" in e and "timestamp" in e for e in events), lines


def make_certificates(tmp):
    """A CA and a server certificate for 127.0.0.1 and localhost, by openssl."""
    ca_key, ca = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.pem")
    key, csr, cert = (os.path.join(tmp, n) for n in ("s3.key", "s3.csr", "s3.pem"))
    ext = os.path.join(tmp, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=hamster test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


@pytest.fixture(scope="module")
def tls_server():
    with tempfile.TemporaryDirectory(prefix="hamster-tls-") as tmp:
        ca, cert, key = make_certificates(tmp)
        s = Server(os.path.join(tmp, "data"), ["--tls-cert", cert, "--tls-key", key])
        s.endpoint = f"https://127.0.0.1:{s.port}"
        s.ca = ca
        s.start()
        try:
            yield s
        finally:
            s.stop()


def test_boto3_over_https_with_the_ca(tls_server):
    cfg = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    s3 = boto3.client("s3", endpoint_url=tls_server.endpoint, region_name="us-east-1",
                      aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                      config=cfg, verify=tls_server.ca)
    s3.create_bucket(Bucket="secure")
    body = os.urandom(2 * 1024 * 1024 + 17)
    s3.put_object(Bucket="secure", Key="k", Body=body)
    assert s3.get_object(Bucket="secure", Key="k")["Body"].read() == body
    part = s3.get_object(Bucket="secure", Key="k", Range="bytes=100-199")["Body"].read()
    assert part == body[100:200]
    # Without the CA the certificate is not trusted: TLS is real.
    untrusted = boto3.client("s3", endpoint_url=tls_server.endpoint, region_name="us-east-1",
                             aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                             config=cfg, verify=True)
    with pytest.raises(botocore.exceptions.SSLError):
        untrusted.list_buckets()


def test_aws_cli_over_https_with_the_ca(tls_server, tmp_path):
    env = client_env()
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1")
    aws = ["aws", "--endpoint-url", tls_server.endpoint, "--ca-bundle", tls_server.ca]
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(9 * 1024 * 1024))  # multipart through the CLI
    for args in (["s3", "mb", "s3://cli-secure"],
                 ["s3", "cp", str(src), "s3://cli-secure/big.bin"],
                 ["s3", "cp", "s3://cli-secure/big.bin", str(tmp_path / "back.bin")]):
        out = subprocess.run(aws + args, capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    listing = subprocess.run(aws + ["s3", "ls", "s3://cli-secure"], capture_output=True,
                             text=True, env=env, timeout=60)
    assert "big.bin" in listing.stdout, listing.stderr


def test_plain_http_to_the_tls_port_is_refused_clearly(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"speaks HTTPS only" in body and b"https://" in body, answer
    # boto3 pointed at http:// gets a clear failure, not a hang.
    plain = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{tls_server.port}",
                         region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key=SECRET_KEY,
                         config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        plain.list_buckets()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_bad_certificate_file_is_named_at_start(tmp_path):
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate\n")
    out = subprocess.run(
        [hamster_bin(), "server", "--data", str(tmp_path / "d"), "--s3",
         f"127.0.0.1:{free_port()}", "--tls-cert", str(bad), "--tls-key", str(bad)],
        capture_output=True, text=True, timeout=30, env=client_env())
    assert out.returncode != 0
    assert str(bad) in out.stderr and "no certificate" in out.stderr, out.stderr
