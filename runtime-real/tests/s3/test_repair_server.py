"""Repair on `hamster server` (one node, 1+0): a shard rotted on disk is found by the deep
scrub, with no client read, and the object is recorded lost (one node cannot rebuild it):
`hamster admin lost` lists it, GET and HEAD answer 410 ObjectLost instead of wrong bytes
or a 503 that clients retry forever, and listings still show it. Other objects serve on.
"""

import os
import subprocess
import time

import botocore.exceptions
import pytest

from conftest import Server, error_code, hamster_bin, status

SCRUB_TIMEOUT_S = 60


def admin(server, *args):
    out = subprocess.run([hamster_bin(), "admin", *args, "--data", server.data_dir],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"admin {args}: {out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture
def server(tmp_path):
    s = Server(str(tmp_path / "data")).start()
    try:
        yield s
    finally:
        s.stop()


def test_a_rotted_shard_is_found_by_the_scrub_and_the_object_listed_lost(server):
    s3 = server.client()
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="rotten.jpg", Body=b"r" * 300_000)
    shard_dir = os.path.join(server.data_dir, "shards")
    shards = [n for n in os.listdir(shard_dir) if n.endswith(".shard")]
    assert len(shards) == 1, shards
    s3.put_object(Bucket="photos", Key="fine.jpg", Body=b"f" * 1000)
    with open(os.path.join(shard_dir, shards[0]), "r+b") as f:
        f.seek(80 + 100_000)
        f.write(b"\x00" * 512)
    assert "no lost objects" in admin(server, "lost")
    assert "full scrub pass started" in admin(server, "repair", "start")
    deadline = time.time() + SCRUB_TIMEOUT_S
    while "rotten.jpg" not in (listing := admin(server, "lost")):
        assert time.time() < deadline, f"not found lost in time:\n{listing}\n{server.log()}"
        time.sleep(0.5)
    line = next(l for l in listing.splitlines() if "rotten.jpg" in l)
    assert line.split()[:4] == ["photos", "rotten.jpg", "300000", "0/1"], line
    repair = admin(server, "repair", "status")
    assert "node 1: scrub" in repair and "marked lost: 1" in repair, repair
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="photos", Key="rotten.jpg")
    assert (error_code(e), status(e)) == ("ObjectLost", 410)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket="photos", Key="rotten.jpg")
    assert status(e) == 410
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="photos")["Contents"]]
    assert keys == ["fine.jpg", "rotten.jpg"]
    assert s3.get_object(Bucket="photos", Key="fine.jpg")["Body"].read() == b"f" * 1000
    # Deleting a lost object takes it off the list.
    s3.delete_object(Bucket="photos", Key="rotten.jpg")
    assert "no lost objects" in admin(server, "lost")
