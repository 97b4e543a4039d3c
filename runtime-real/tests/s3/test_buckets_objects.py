"""Buckets and single objects through boto3: create, head, list, delete; put, get,
head, delete; metadata and standard headers; digests and checksums; ranges and
conditions."""

import base64
import datetime
import hashlib
import os
import uuid
import zlib

import botocore.exceptions
import pytest

from conftest import error_code, status

ClientError = botocore.exceptions.ClientError


def test_bucket_lifecycle(s3):
    name = "life-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in (None, "")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert error_code(e) == "BucketAlreadyOwnedByYou" and status(e) == 409
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e) == "BucketNotEmpty" and status(e) == 409
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e) == "NoSuchBucket"


@pytest.mark.parametrize("name", ["ab", "UPPER-case", "a_b_c", "-dash", "dot..dot",
                                  "192.168.1.1", "x" * 64])
def test_invalid_bucket_names(s3, name):
    with pytest.raises((ClientError, botocore.exceptions.ParamValidationError)) as e:
        s3.create_bucket(Bucket=name)
    if isinstance(e.value, ClientError):
        assert error_code(e) == "InvalidBucketName" and status(e) == 400


def test_put_get_head_delete_with_metadata_and_headers(s3, bucket):
    body = os.urandom(300_000)
    expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    put = s3.put_object(
        Bucket=bucket, Key="dir/obj.bin", Body=body, ContentType="application/x-test",
        ContentEncoding="identity", ContentDisposition='attachment; filename="o.bin"',
        ContentLanguage="en", CacheControl="max-age=60", Expires=expires,
        Metadata={"color": "blue", "Owner-Name": "Ann"})
    md5 = hashlib.md5(body).hexdigest()
    assert put["ETag"] == f'"{md5}"'
    got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == body
    assert got["ETag"] == f'"{md5}"'
    assert got["ContentLength"] == len(body)
    assert got["ContentType"] == "application/x-test"
    assert got["ContentDisposition"] == 'attachment; filename="o.bin"'
    assert got["ContentLanguage"] == "en"
    assert got["CacheControl"] == "max-age=60"
    assert got["Metadata"] == {"color": "blue", "owner-name": "Ann"}
    head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ContentLength"] == len(body) and head["ETag"] == f'"{md5}"'
    assert head["Metadata"]["color"] == "blue"
    assert head["LastModified"].year >= 2026
    s3.delete_object(Bucket=bucket, Key="dir/obj.bin")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert error_code(e) == "NoSuchKey" and status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert status(e) == 404
    # Deleting what is not there succeeds, as in S3.
    s3.delete_object(Bucket=bucket, Key="dir/obj.bin")


@pytest.mark.parametrize("size", [0, 1, 4096, 128 * 1024, 128 * 1024 + 1, 3 * 1024 * 1024 + 17])
def test_sizes_round_trip(s3, bucket, size):
    body = os.urandom(size)
    s3.put_object(Bucket=bucket, Key=f"s{size}", Body=body)
    assert s3.get_object(Bucket=bucket, Key=f"s{size}")["Body"].read() == body


def test_overwrite_replaces_the_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"


def test_content_md5(s3, bucket):
    body = b"digest me"
    good = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5-bad", Body=body, ContentMD5=bad)
    assert error_code(e) == "BadDigest" and status(e) == 400
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="md5-bad")
    assert status(e) == 404, "a refused PUT stored nothing"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5-bad", Body=body, ContentMD5="not-base64!")
    assert error_code(e) == "InvalidDigest"


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_checksums_verified_and_returned(s3, bucket, alg):
    body = os.urandom(200_000)
    key = f"sum-{alg}"
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm=alg)
    sent = put[f"Checksum{alg}"]
    if alg == "CRC32":
        assert sent == crc32_b64(body)
    if alg == "SHA256":
        assert sent == base64.b64encode(hashlib.sha256(body).digest()).decode()
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == sent
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got[f"Checksum{alg}"] == sent


def test_wrong_checksum_is_bad_digest(s3, bucket):
    body = b"checksum this"
    wrong = crc32_b64(b"something else")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="wrong-sum", Body=body, ChecksumCRC32=wrong)
    assert error_code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="wrong-sum")
    assert status(e) == 404


def test_ranges(s3, bucket):
    body = bytes(range(256)) * 40  # 10240 bytes
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    cases = {"bytes=0-0": body[0:1], "bytes=10-19": body[10:20], "bytes=10000-": body[10000:],
             "bytes=-100": body[-100:], "bytes=10200-99999": body[10200:],
             "bytes=-99999": body}
    for header, want in cases.items():
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["Body"].read() == want, header
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"].startswith("bytes ") and got["ContentRange"].endswith("/10240")
    for header in ["bytes=10240-", "bytes=20000-20001"]:
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert status(e) == 416 and error_code(e) == "InvalidRange", header


def test_ranges_across_stripes_of_a_large_object(s3, bucket):
    body = os.urandom(5 * 1024 * 1024 + 333)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    for lo, hi in [(0, 1 << 20), ((1 << 20) - 7, (1 << 20) + 7), (4_000_000, len(body) - 1)]:
        got = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={lo}-{hi}")
        assert got["Body"].read() == body[lo:hi + 1]


def test_conditional_get_and_head(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")
    etag = put["ETag"]
    before = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"nope"')["Body"].read() == b"cond"
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=before)["Body"].read() == b"cond"
    assert s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=after)["Body"].read() == b"cond"
    failing = [
        ({"IfMatch": '"other"'}, 412),
        ({"IfUnmodifiedSince": before}, 412),
        ({"IfNoneMatch": etag}, 304),
        ({"IfModifiedSince": after}, 304),
        # If-Match wins over If-Unmodified-Since; If-None-Match over If-Modified-Since.
        ({"IfMatch": etag, "IfNoneMatch": etag}, 304),
    ]
    for args, code in failing:
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="c", **args)
        assert status(e) == code, args
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key="c", **args)
        assert status(e) == code, args


def test_conditional_put_if_none_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="once", Body=b"2", IfNoneMatch="*")
    assert status(e) == 412 and error_code(e) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"1"


def test_keys_are_stored_exactly(server, s3, bucket):
    keys = ["../x", "a//b", "/leading", "trailing/", "dot/./seg", "tab\there", "ctl\x01\x1fz",
            "sp ace", "uni-é-☃", "q?a=b&c", "%2F", "k" * 1024]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, EncodingType="url")["Contents"]]
    from urllib.parse import unquote
    assert sorted(unquote(k) for k in listed) == sorted(keys)
    for k in keys:
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode(), repr(k)
    # Nothing escaped the data directory: keys are never file names.
    root = os.path.dirname(server.data_dir)
    for dirpath, _, files in os.walk(root):
        assert dirpath.startswith(root)
        for f in files:
            assert f not in ("x", "b", "leading"), os.path.join(dirpath, f)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"long")
    assert error_code(e) == "KeyTooLongError" and status(e) == 400


def test_delete_objects(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"d{i}", Body=b"x")
    out = s3.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": "d0"}, {"Key": "d1"}, {"Key": "missing"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["d0", "d1", "missing"]
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d2"}], "Quiet": True})
    assert not quiet.get("Deleted")
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == ["d3", "d4"]


def test_no_such_bucket_for_object_operations(s3):
    for call in [lambda: s3.put_object(Bucket="no-such-bucket-x", Key="k", Body=b"x"),
                 lambda: s3.get_object(Bucket="no-such-bucket-x", Key="k"),
                 lambda: s3.list_objects_v2(Bucket="no-such-bucket-x")]:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "NoSuchBucket"


def test_unsupported_operations_answer_not_implemented(s3, bucket):
    for call in [lambda: s3.get_bucket_website(Bucket=bucket),
                 lambda: s3.get_bucket_analytics_configuration(Bucket=bucket, Id="a"),
                 lambda: s3.get_bucket_replication(Bucket=bucket)]:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "NotImplemented" and status(e) == 501
