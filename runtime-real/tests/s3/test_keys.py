"""Access keys and their rights, through `hamster admin key ...` and boto3, with three
principals: the root key, a key granted rights, a key without them, and anonymous
requests. Every refusal must be 403 AccessDenied with S3's error document."""

import os
import re
import stat
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid

import botocore.exceptions
import pytest

from conftest import (ACCESS_KEY, SECRET_KEY, Server, client_env, error_code, hamster_bin,
                      status)


def admin(server, *args, access_key=ACCESS_KEY, secret_key=SECRET_KEY, check=True):
    env = client_env()
    env.update(HAMSTER_ENDPOINT=server.endpoint, HAMSTER_ACCESS_KEY=access_key,
               HAMSTER_SECRET_KEY=secret_key)
    out = subprocess.run([hamster_bin(), "admin", "key", *args], env=env, capture_output=True,
                         text=True, timeout=30)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def new_key(server, name="app", *flags):
    out = admin(server, "create", name, *flags).stdout
    lines = out.splitlines()
    assert len(lines) == 2, out
    access = re.fullmatch(r"access key: (HK[A-Z0-9]{18})", lines[0])
    secret = re.fullmatch(r"secret key: ([A-Za-z0-9]{40})", lines[1])
    assert access and secret, out
    return access.group(1), secret.group(1)


def denied(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    # A HEAD's answer has no body, so boto3 names the error by its status.
    head = call.__name__.startswith("head_")
    assert error_code(e) == ("403" if head else "AccessDenied"), e.value.response
    assert status(e) == 403


def name():
    return "b-" + uuid.uuid4().hex[:16]


def test_a_new_key_can_do_nothing_until_granted_then_exactly_what_it_was_granted(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"root's")
    ak, sk = new_key(server)
    app = server.client(ak, sk)
    assert app.list_buckets()["Buckets"] == []
    denied(app.get_object, Bucket=bucket, Key="k")
    denied(app.head_object, Bucket=bucket, Key="k")
    denied(app.list_objects_v2, Bucket=bucket)
    denied(app.put_object, Bucket=bucket, Key="x", Body=b"no")
    denied(app.delete_object, Bucket=bucket, Key="k")
    denied(app.head_bucket, Bucket=bucket)

    admin(server, "allow", ak, bucket, "--read")
    assert app.get_object(Bucket=bucket, Key="k")["Body"].read() == b"root's"
    assert [o["Key"] for o in app.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert [b["Name"] for b in app.list_buckets()["Buckets"]] == [bucket]
    denied(app.put_object, Bucket=bucket, Key="x", Body=b"no")
    denied(app.create_multipart_upload, Bucket=bucket, Key="x")
    denied(app.delete_bucket, Bucket=bucket)

    admin(server, "allow", ak, bucket, "--write")
    app.put_object(Bucket=bucket, Key="x", Body=b"app's")
    upload = app.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    app.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=upload)
    app.delete_object(Bucket=bucket, Key="x")
    denied(app.delete_bucket, Bucket=bucket)

    admin(server, "deny", ak, bucket, "--read")
    denied(app.get_object, Bucket=bucket, Key="k")
    app.put_object(Bucket=bucket, Key="y", Body=b"still writes")
    assert app.list_buckets()["Buckets"] == []
    info = admin(server, "info", ak).stdout
    assert f"access key: {ak}" in info and f"  {bucket}: write" in info, info

    admin(server, "delete", ak)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        app.list_buckets()
    assert error_code(e) == "InvalidAccessKeyId"
    assert status(e) == 403


def test_a_key_owns_the_buckets_it_creates(server, s3):
    ak, sk = new_key(server, "maker")
    other_ak, other_sk = new_key(server, "other")
    app, other = server.client(ak, sk), server.client(other_ak, other_sk)
    mine = name()
    app.create_bucket(Bucket=mine)
    app.put_object(Bucket=mine, Key="k", Body=b"v")
    listed = app.list_buckets()
    assert [b["Name"] for b in listed["Buckets"]] == [mine]
    assert listed["Owner"] == {"ID": ak, "DisplayName": "maker"}
    # The root sees every bucket; other keys see none of them.
    assert mine in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert other.list_buckets()["Buckets"] == []
    denied(other.get_object, Bucket=mine, Key="k")

    with pytest.raises(botocore.exceptions.ClientError) as e:
        app.create_bucket(Bucket=mine)
    assert (error_code(e), status(e)) == ("BucketAlreadyOwnedByYou", 409)
    for someone_else in (other, s3):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            someone_else.create_bucket(Bucket=mine)
        assert (error_code(e), status(e)) == ("BucketAlreadyExists", 409)

    # The owner may delete it; rights on it go with it.
    app.delete_object(Bucket=mine, Key="k")
    app.delete_bucket(Bucket=mine)
    assert "buckets: none" in admin(server, "info", ak).stdout

    # A key made with --no-create-bucket may not.
    ak3, sk3 = new_key(server, "reader", "--no-create-bucket")
    denied(server.client(ak3, sk3).create_bucket, Bucket=name())
    assert "can create buckets: no" in admin(server, "info", ak3).stdout


def test_a_copy_needs_read_on_its_source_and_write_on_its_target(server, s3):
    src, dst = name(), name()
    for b in (src, dst):
        s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=src, Key="s", Body=b"source bytes")
    ak, sk = new_key(server, "copier")
    app = server.client(ak, sk)
    admin(server, "allow", ak, dst, "--write")
    denied(app.copy_object, Bucket=dst, Key="c", CopySource={"Bucket": src, "Key": "s"})
    admin(server, "allow", ak, src, "--read")
    app.copy_object(Bucket=dst, Key="c", CopySource={"Bucket": src, "Key": "s"})
    assert s3.get_object(Bucket=dst, Key="c")["Body"].read() == b"source bytes"
    denied(app.copy_object, Bucket=src, Key="c", CopySource={"Bucket": dst, "Key": "c"})


def test_anonymous_requests_are_refused_with_the_s3_error_document(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    for method, path in [("GET", f"/{bucket}/k"), ("GET", f"/{bucket}"), ("GET", "/"),
                         ("PUT", f"/{bucket}/new"), ("DELETE", f"/{bucket}/k")]:
        req = urllib.request.Request(server.endpoint + path, method=method,
                                     data=b"x" if method == "PUT" else None)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 403, (method, path)
        assert b"<Code>AccessDenied</Code>" in e.value.read(), (method, path)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_only_the_root_key_may_use_the_admin_api(server):
    ak, sk = new_key(server, "not-root")
    out = admin(server, "list", access_key=ak, secret_key=sk, check=False)
    assert out.returncode != 0 and "AccessDenied (403)" in out.stderr, out.stderr
    out = admin(server, "create", "x", access_key=ACCESS_KEY, secret_key="wrong" * 8, check=False)
    assert out.returncode != 0 and "SignatureDoesNotMatch" in out.stderr, out.stderr
    # Unsigned: refused before any JSON is read.
    req = urllib.request.Request(server.endpoint + "/hamster-admin/v1/keys", method="POST",
                                 data=b'{"op":"key-list"}', headers={"x-hamster-admin": "v1"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    listed = admin(server, "list").stdout
    assert ak in listed and "not-root" in listed
    out = admin(server, "info", "HKNOSUCHKEY000000000", check=False)
    assert out.returncode != 0 and "NoSuchAccessKey (404)" in out.stderr, out.stderr
    out = admin(server, "allow", ak, name(), "--read", check=False)
    assert out.returncode != 0 and "NoSuchBucket (404)" in out.stderr, out.stderr
    out = admin(server, "allow", ak, "some-bucket", check=False)
    assert out.returncode != 0 and "--read, --write, --owner" in out.stderr, out.stderr


def test_keys_survive_a_restart_and_their_secrets_are_never_stored_in_the_clear():
    with tempfile.TemporaryDirectory(prefix="hamster-keys-") as tmp:
        data = os.path.join(tmp, "data")
        srv = Server(data).start()
        try:
            ak, sk = new_key(srv, "durable")
            bucket = name()
            srv.client(ak, sk).create_bucket(Bucket=bucket)
            srv.client(ak, sk).put_object(Bucket=bucket, Key="k", Body=b"kept")
        finally:
            srv.stop()
        searched = 0
        for root, _, files in os.walk(data):
            for f in files:
                path = os.path.join(root, f)
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue  # the admin socket
                with open(path, "rb") as fh:
                    content = fh.read()
                assert sk.encode() not in content, f"the secret is in {path} in the clear"
                searched += len(content)
        assert searched > 0
        srv = Server(data)
        srv.start()
        try:
            got = srv.client(ak, sk).get_object(Bucket=bucket, Key="k")["Body"].read()
            assert got == b"kept"
            assert f"  {bucket}: read, write, owner" in admin(srv, "info", ak).stdout
        finally:
            srv.stop()


def test_keys_through_the_admin_socket_as_every_admin_command(server, s3):
    """`--data DIR` reaches `hamster server`'s admin socket: no root key needed (the
    socket is the server user's alone)."""
    env = client_env()
    for var in ("HAMSTER_ENDPOINT", "HAMSTER_ACCESS_KEY", "HAMSTER_SECRET_KEY"):
        env.pop(var, None)

    def socket_admin(*args):
        out = subprocess.run([hamster_bin(), "admin", "key", *args, "--data", server.data_dir],
                             env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    lines = socket_admin("create", "via-socket").splitlines()
    assert len(lines) == 2 and lines[0].startswith("access key: HK"), lines
    ak, sk = (line.split(": ", 1)[1] for line in lines)
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    assert socket_admin("allow", ak, bucket, "--write") == "done\n"
    server.client(ak, sk).put_object(Bucket=bucket, Key="k", Body=b"v")
    assert f"{bucket}: write" in socket_admin("info", ak)
    out = subprocess.run([hamster_bin(), "admin", "key", "list"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0 and "--endpoint" in out.stderr, out.stderr

