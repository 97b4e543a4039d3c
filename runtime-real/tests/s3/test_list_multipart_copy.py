"""Listing (v1 and v2), multipart uploads and server-side copies through boto3."""

import base64
import hashlib
import os

import botocore.exceptions
import pytest

from conftest import error_code, status

ClientError = botocore.exceptions.ClientError
MIB = 1024 * 1024

KEYS = ["a", "a/1", "a/2", "a/b/3", "b", "b/1", "c/1", "c/2", "d", "photos/2024/x.jpg",
        "photos/2025/y.jpg", "z"]


@pytest.fixture
def listed_bucket(s3, bucket):
    for k in KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def pages_v2(s3, bucket, **kw):
    keys, prefixes, token, pages = [], [], None, 0
    while True:
        args = dict(kw)
        if token:
            args["ContinuationToken"] = token
        out = s3.list_objects_v2(Bucket=bucket, **args)
        pages += 1
        keys += [o["Key"] for o in out.get("Contents", [])]
        prefixes += [p["Prefix"] for p in out.get("CommonPrefixes", [])]
        assert out["KeyCount"] == len(out.get("Contents", [])) + len(out.get("CommonPrefixes", []))
        if not out["IsTruncated"]:
            return keys, prefixes, pages
        token = out["NextContinuationToken"]


def test_list_v2_flat_and_paged(s3, listed_bucket):
    for max_keys in [1, 2, 5, 1000]:
        keys, prefixes, pages = pages_v2(s3, listed_bucket, MaxKeys=max_keys)
        assert keys == sorted(KEYS) and prefixes == []
        assert pages == max(1, -(-len(KEYS) // max_keys))


def test_list_v2_delimiter_prefix_start_after(s3, listed_bucket):
    keys, prefixes, _ = pages_v2(s3, listed_bucket, Delimiter="/")
    assert keys == ["a", "b", "d", "z"]
    assert prefixes == ["a/", "b/", "c/", "photos/"]
    keys, prefixes, _ = pages_v2(s3, listed_bucket, Delimiter="/", MaxKeys=1)
    assert keys == ["a", "b", "d", "z"] and prefixes == ["a/", "b/", "c/", "photos/"]
    keys, prefixes, _ = pages_v2(s3, listed_bucket, Prefix="a/", Delimiter="/")
    assert keys == ["a/1", "a/2"] and prefixes == ["a/b/"]
    keys, prefixes, _ = pages_v2(s3, listed_bucket, Prefix="photos/", Delimiter="/")
    assert keys == [] and prefixes == ["photos/2024/", "photos/2025/"]
    keys, _, _ = pages_v2(s3, listed_bucket, StartAfter="c/1")
    assert keys == ["c/2", "d", "photos/2024/x.jpg", "photos/2025/y.jpg", "z"]
    keys, _, _ = pages_v2(s3, listed_bucket, Prefix="nothing")
    assert keys == []
    out = s3.list_objects_v2(Bucket=listed_bucket, MaxKeys=0)
    assert out["KeyCount"] == 0 and not out["IsTruncated"]
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=listed_bucket, ContinuationToken="not a token")
    assert error_code(e) == "InvalidArgument"


def test_list_v1_markers(s3, listed_bucket):
    keys, marker = [], None
    while True:
        args = {"MaxKeys": 3}
        if marker:
            args["Marker"] = marker
        out = s3.list_objects(Bucket=listed_bucket, **args)
        page = [o["Key"] for o in out.get("Contents", [])]
        keys += page
        if not out["IsTruncated"]:
            break
        marker = out.get("NextMarker", page[-1])
    assert keys == sorted(KEYS)
    out = s3.list_objects(Bucket=listed_bucket, Delimiter="/", MaxKeys=2)
    assert out["IsTruncated"] and out["NextMarker"] == "a/"
    out = s3.list_objects(Bucket=listed_bucket, Delimiter="/", Marker="a/")
    assert [o["Key"] for o in out["Contents"]] == ["b", "d", "z"]
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["b/", "c/", "photos/"]


def pages_versions(s3, bucket, **kw):
    """Every page of ListObjectVersions, resumed from its Next*Marker as tools do."""
    versions, prefixes, markers = [], [], {}
    while True:
        out = s3.list_object_versions(Bucket=bucket, **kw, **markers)
        assert "DeleteMarkers" not in out
        versions += out.get("Versions", [])
        prefixes += [p["Prefix"] for p in out.get("CommonPrefixes", [])]
        if not out["IsTruncated"]:
            return versions, prefixes
        markers = {"KeyMarker": out["NextKeyMarker"],
                   "VersionIdMarker": out["NextVersionIdMarker"]}


def test_list_object_versions_of_an_unversioned_bucket(s3, listed_bucket):
    for max_keys in [1, 5, 1000]:
        versions, prefixes = pages_versions(s3, listed_bucket, MaxKeys=max_keys)
        assert [v["Key"] for v in versions] == sorted(KEYS) and prefixes == []
        assert {(v["VersionId"], v["IsLatest"]) for v in versions} == {("null", True)}
        assert all(v["Size"] == len(v["Key"]) and v["ETag"].startswith('"') for v in versions)
    versions, prefixes = pages_versions(s3, listed_bucket, Delimiter="/", MaxKeys=2)
    assert [v["Key"] for v in versions] == ["a", "b", "d", "z"]
    assert prefixes == ["a/", "b/", "c/", "photos/"]
    versions, _ = pages_versions(s3, listed_bucket, Prefix="photos/")
    assert [v["Key"] for v in versions] == ["photos/2024/x.jpg", "photos/2025/y.jpg"]
    out = s3.list_object_versions(Bucket=listed_bucket, KeyMarker="c/1")
    assert [v["Key"] for v in out["Versions"]][:2] == ["c/2", "d"]
    out = s3.list_object_versions(Bucket=listed_bucket, KeyMarker="c/1", VersionIdMarker="null")
    assert out["Versions"][0]["Key"] == "c/2" and out["VersionIdMarker"] == "null"


def test_list_object_versions_empties_a_bucket_as_tools_do(s3, listed_bucket):
    # What test suites and `aws s3 rb --force`-style cleanups do: list every version,
    # delete each by its id, then delete the bucket.
    versions, _ = pages_versions(s3, listed_bucket, MaxKeys=5)
    for chunk in range(0, len(versions), 5):
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in versions[chunk:chunk + 5]]
        out = s3.delete_objects(Bucket=listed_bucket, Delete={"Objects": objects})
        assert "Errors" not in out, out
    assert pages_versions(s3, listed_bucket) == ([], [])
    s3.delete_bucket(Bucket=listed_bucket)


def test_list_object_versions_refuses_bad_markers(s3, listed_bucket):
    for args in [{"VersionIdMarker": "null"}, {"KeyMarker": "a", "VersionIdMarker": "v1"},
                 {"MaxKeys": -1}]:
        with pytest.raises(ClientError) as e:
            s3.list_object_versions(Bucket=listed_bucket, **args)
        assert (error_code(e), status(e)) == ("InvalidArgument", 400), args
    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket="no-such-bucket-v")
    assert (error_code(e), status(e)) == ("NoSuchBucket", 404)


def test_version_ids_on_an_unversioned_bucket(s3, bucket):
    # `null` is every object's one version; any other id names none and is refused,
    # never served or deleted as if it named the current object.
    s3.put_object(Bucket=bucket, Key="k", Body=b"current")
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"current"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId="null")["ContentLength"] == 7
    other = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    refused = [
        lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=other),
        lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=other),
        lambda: s3.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": "k", "VersionId": other}]}),
        lambda: s3.copy_object(Bucket=bucket, Key="c",
                               CopySource={"Bucket": bucket, "Key": "k", "VersionId": other}),
    ]
    for call in refused:
        with pytest.raises(ClientError) as e:
            call()
        assert (error_code(e), status(e)) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k", VersionId=other)
    assert status(e) == 400  # a HEAD's error has no body, so no code
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"current"
    s3.copy_object(Bucket=bucket, Key="c",
                   CopySource={"Bucket": bucket, "Key": "k", "VersionId": "null"})
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"current"
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert status(e) == 404


def multipart_etag(parts):
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def upload(s3, bucket, key, parts, **create):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)
    uid = up["UploadId"]
    done = []
    for n, data in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data)
        assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    return uid, done


def test_multipart_complete(s3, bucket):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 3), os.urandom(1234)]
    uid, done = upload(s3, bucket, "mp", parts, ContentType="video/x-test",
                       Metadata={"kind": "multi"})
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    page = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid, MaxParts=2)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    rest = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid, PartNumberMarker=2)
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("mp", uid)]
    out = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                       MultipartUpload={"Parts": done})
    assert out["ETag"] == multipart_etag(parts)
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == multipart_etag(parts)
    assert got["ContentType"] == "video/x-test" and got["Metadata"] == {"kind": "multi"}
    whole = b"".join(parts)
    lo, hi = 5 * MIB - 10, 5 * MIB + 10
    ranged = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={lo}-{hi}")["Body"].read()
    assert ranged == whole[lo:hi + 1], "a range across parts"
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert error_code(e) == "NoSuchUpload"


def test_multipart_errors(s3, bucket):
    small = [b"x" * 1000, b"y" * 1000]
    uid, done = upload(s3, bucket, "bad", small)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="bad", UploadId=uid,
                                     MultipartUpload={"Parts": done})
    assert error_code(e) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="bad", UploadId=uid,
                                     MultipartUpload={"Parts": list(reversed(done))})
    assert error_code(e) == "InvalidPartOrder"
    wrong = [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="bad", UploadId=uid,
                                     MultipartUpload={"Parts": wrong})
    assert error_code(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="bad", UploadId="no-such-upload", PartNumber=1,
                       Body=b"x")
    assert error_code(e) == "NoSuchUpload" and status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="other-key", UploadId=uid, PartNumber=1, Body=b"x")
    assert error_code(e) == "NoSuchUpload", "an upload belongs to its key"
    s3.abort_multipart_upload(Bucket=bucket, Key="bad", UploadId=uid)
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket=bucket, Key="bad", UploadId=uid)
    assert error_code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad")
    assert status(e) == 404


def test_multipart_with_checksums(s3, bucket):
    parts = [os.urandom(5 * MIB), os.urandom(100)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="sum", ChecksumAlgorithm="SHA256")
    uid, done = up["UploadId"], []
    for n, data in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="sum", UploadId=uid, PartNumber=n, Body=data,
                           ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    out = s3.complete_multipart_upload(Bucket=bucket, Key="sum", UploadId=uid,
                                       MultipartUpload={"Parts": done})
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    assert out["ChecksumSHA256"] == base64.b64encode(composite).decode() + "-2"


def test_upload_part_copy(s3, bucket):
    source = os.urandom(7 * MIB)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    up = s3.create_multipart_upload(Bucket=bucket, Key="assembled")
    uid = up["UploadId"]
    r1 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes=0-{5 * MIB - 1}")
    r2 = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=uid, PartNumber=2,
                        Body=b"tail")
    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": r2["ETag"]}]})
    got = s3.get_object(Bucket=bucket, Key="assembled")["Body"].read()
    assert got == source[:5 * MIB] + b"tail"


def test_copy_object_copy_and_replace(s3, bucket):
    body = os.urandom(400_000)
    s3.put_object(Bucket=bucket, Key="orig", Body=body, ContentType="text/x-orig",
                  Metadata={"a": "1"})
    out = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "orig"})
    assert out["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="copy")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/x-orig" and got["Metadata"] == {"a": "1"}
    s3.copy_object(Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "orig"},
                   MetadataDirective="REPLACE", ContentType="text/x-new", Metadata={"b": "2"})
    got = s3.head_object(Bucket=bucket, Key="copy2")
    assert got["ContentType"] == "text/x-new" and got["Metadata"] == {"b": "2"}
    # Onto itself: only with new metadata.
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="orig", CopySource={"Bucket": bucket, "Key": "orig"})
    assert error_code(e) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="orig", CopySource={"Bucket": bucket, "Key": "orig"},
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="orig")["Metadata"] == {"c": "3"}
    assert s3.get_object(Bucket=bucket, Key="orig")["Body"].read() == body
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "orig"},
                       CopySourceIfMatch='"nope"')
    assert status(e) == 412
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "absent"})
    assert error_code(e) == "NoSuchKey"


def test_copy_of_a_multipart_object(s3, bucket):
    parts = [os.urandom(5 * MIB), os.urandom(10)]
    uid, done = upload(s3, bucket, "mpsrc", parts)
    s3.complete_multipart_upload(Bucket=bucket, Key="mpsrc", UploadId=uid,
                                 MultipartUpload={"Parts": done})
    s3.copy_object(Bucket=bucket, Key="mpdst", CopySource={"Bucket": bucket, "Key": "mpsrc"})
    assert s3.get_object(Bucket=bucket, Key="mpdst")["Body"].read() == b"".join(parts)
