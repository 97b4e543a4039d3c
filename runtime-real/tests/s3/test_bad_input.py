"""Bad input gets the right S3 error, the server keeps serving, and nothing that was
acknowledged is lost: bad and expired signatures, unknown keys, malformed XML,
truncated bodies, oversized headers and chunks."""

import datetime
import hashlib
import os
import socket
import time
import urllib.request
import uuid

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import ACCESS_KEY, SECRET_KEY, error_code, status

ClientError = botocore.exceptions.ClientError


def signed_request(server, method, path, body=b"", headers=None, query=""):
    """A SigV4-signed request, sent raw; returns (status, body)."""
    url = f"{server.endpoint}{path}" + (f"?{query}" if query else "")
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body,
                                         headers=dict(headers or {}))
    req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)
    botocore.auth.SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=body or None, method=method,
                               headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_wrong_secret_is_signature_does_not_match(server, bucket):
    bad = server.client(secret_key="not-the-secret-key-at-all")
    with pytest.raises(ClientError) as e:
        bad.list_objects_v2(Bucket=bucket)
    assert status(e) == 403 and error_code(e) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert status(e) == 403


def test_unknown_access_key(server, bucket):
    stranger = server.client(access_key="AKIDONTKNOWYOU000000")
    with pytest.raises(ClientError) as e:
        stranger.list_buckets()
    assert status(e) == 403
    assert error_code(e) in ("InvalidAccessKeyId", "NotSignedUp")


def test_anonymous_requests_are_refused(server, bucket):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{server.endpoint}/{bucket}", timeout=5)
    assert e.value.code == 403


def test_presigned_urls_and_their_expiry(s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"},
                                    ExpiresIn=60)
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.read() == b"presigned body"
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pp"},
                                        ExpiresIn=60)
    req = urllib.request.Request(put_url, data=b"uploaded", method="PUT")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200
    assert s3.get_object(Bucket=bucket, Key="pp")["Body"].read() == b"uploaded"
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"},
                                        ExpiresIn=1)
    time.sleep(2.5)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(expired, timeout=5)
    assert e.value.code == 403
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(tampered, timeout=5)
    assert e.value.code in (400, 403)


def test_malformed_xml(server, s3, bucket):
    code, body = signed_request(server, "POST", f"/{bucket}", body=b"<Delete><Object><Key>",
                                query="delete")
    assert code == 400 and b"MalformedXML" in body
    up = s3.create_multipart_upload(Bucket=bucket, Key="m")
    code, body = signed_request(server, "POST", f"/{bucket}/m", body=b"not xml at all",
                                query=f"uploadId={up['UploadId']}")
    assert code == 400 and b"MalformedXML" in body
    # Still serving.
    s3.put_object(Bucket=bucket, Key="after", Body=b"fine")


def shard_files(server):
    found = []
    for dirpath, _, files in os.walk(os.path.join(server.data_dir, "shards")):
        found += [os.path.join(dirpath, f) for f in files]
    return found


def test_truncated_body_stores_nothing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="kept", Body=b"acknowledged")
    before = set(shard_files(server))
    head = (f"PUT /{bucket}/cut HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Length: 1000000\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n")
    # Sign the head like a client would (the payload is unsigned).
    req = botocore.awsrequest.AWSRequest(
        method="PUT", url=f"{server.endpoint}/{bucket}/cut", data=b"",
        headers={"Content-Length": "1000000", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "s3",
                            "us-east-1").add_auth(req)
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()
                    if k.lower() not in ("content-length", "x-amz-content-sha256"))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode() + b"\r\n" + os.urandom(400_000))
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
    time.sleep(0.5)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="cut")
    assert status(e) == 404
    leftovers = [f for f in set(shard_files(server)) - before if ".tmp." in f]
    assert not leftovers, leftovers
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"acknowledged"


def test_oversized_headers(server, s3, bucket):
    code, body = signed_request(server, "GET", f"/{bucket}",
                                headers={"x-amz-meta-big": "v" * 20_000})
    assert code == 400 and b"RequestHeaderSectionTooLarge" in body
    # Far beyond any limit: refused by the HTTP layer, the server keeps serving.
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * 200_000 + b"\r\n\r\n")
        sock.settimeout(5)
        try:
            answer = sock.recv(200)
        except OSError:
            answer = b""
    assert answer == b"" or b" 431 " in answer or b" 400 " in answer
    s3.put_object(Bucket=bucket, Key="still", Body=b"serving")


def test_user_metadata_over_2kb(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="meta", Body=b"x", Metadata={"m": "v" * 2100})
    assert error_code(e) == "MetadataTooLarge"


def test_oversized_aws_chunk_is_refused_before_buffering(server, s3, bucket):
    size = 64 << 20
    req = botocore.awsrequest.AWSRequest(
        method="PUT", url=f"{server.endpoint}/{bucket}/chunky", data=b"",
        headers={"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                 "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(size),
                 "x-amz-trailer": "x-amz-checksum-crc32"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "s3",
                            "us-east-1").add_auth(req)
    headers = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    chunk_head = f"{size:x}\r\n".encode()
    payload_len = len(chunk_head) + size + 2
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"PUT /{bucket}/chunky HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     f"Content-Length: {payload_len}\r\n{headers}\r\n".encode() + chunk_head
                     + b"z" * 65536)
        sock.settimeout(10)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
    assert b" 400 " in answer.split(b"\r\n")[0], answer[:300]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="chunky")
    assert status(e) == 404


def test_an_answer_before_the_body_closes_the_connection(server, s3, bucket):
    # boto3 sends `Expect: 100-continue`, and when the answer is a refusal it never sends
    # the body and reuses the connection. Had the server kept it open, it could read the
    # next request's first byte as that body ("UT /b/k" then fails its signature).
    url = f"{server.endpoint}/{bucket}/refused"
    req = botocore.awsrequest.AWSRequest(
        method="PUT", url=url, data=b"",
        headers={"x-amz-content-sha256": hashlib.sha256(b"x").hexdigest(),
                 "x-amz-object-lock-mode": "GOVERNANCE",
                 "x-amz-object-lock-retain-until-date": "2099-01-01T00:00:00Z"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "s3",
                            "us-east-1").add_auth(req)
    headers = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"PUT /{bucket}/refused HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     f"Content-Length: 1\r\nExpect: 100-continue\r\n{headers}\r\n".encode())
        sock.settimeout(10)
        answer = b""
        while more := sock.recv(65536):
            answer += more
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert b" 400 " in head.split(b"\r\n")[0], answer[:300]
    assert b"\r\nconnection: close" in head, head
    assert b"InvalidRequest" in answer
    # The same through boto3: a refusal, then a PUT on the same client, many times over.
    for i in range(20):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE")
        assert error_code(e) in ("InvalidRequest", "InvalidArgument")
        s3.put_object(Bucket=bucket, Key="k", Body=b"%d" % i)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"19"


def test_many_errors_then_all_acknowledged_data_intact(server, s3, bucket):
    kept = {f"k{i}": os.urandom(1000 + i) for i in range(20)}
    for k, v in kept.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    bad = server.client(secret_key="wrong-wrong-wrong-wrong")
    for _ in range(30):
        with pytest.raises(ClientError):
            bad.put_object(Bucket=bucket, Key="k0", Body=b"overwrite attempt")
        signed_request(server, "POST", f"/{bucket}", body=b"<<<", query="delete")
    for k, v in kept.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v


def test_expired_signature_on_headers(server, bucket, monkeypatch):
    # A request signed an hour ago is refused (clock skew), not served.
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: old)
    code, body = signed_request(server, "GET", f"/{bucket}")
    assert code == 403 and b"RequestTimeTooSkewed" in body


def test_bucket_names_at_the_edge(s3):
    name = "x" + uuid.uuid4().hex[:8] + ".dots-ok"
    s3.create_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
