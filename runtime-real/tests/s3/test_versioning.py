"""Bucket versioning through boto3: Put/GetBucketVersioning, versioned PUT, copy and
multipart (their VersionIds), GET/HEAD/DELETE/copy source/tagging by version id,
delete markers, suspended buckets and their `null` version, ListObjectVersions with
markers, and emptying a versioned bucket as tools do."""

import botocore.exceptions
import pytest

from conftest import error_code, status
from test_keys import admin, new_key
from test_policies import fails


def enable(s3, bucket, state="Enabled"):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": state})


def body(s3, bucket, key, **kw):
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def all_versions(s3, bucket, **kw):
    """Every version and delete marker, paged through as tools do: [(key, id, latest,
    marker)] in the listing's order."""
    out, markers = [], {}
    for _ in range(1000):
        page = s3.list_object_versions(Bucket=bucket, **kw, **markers)
        entries = [(v["Key"], v["VersionId"], v["IsLatest"], False)
                   for v in page.get("Versions", [])]
        entries += [(m["Key"], m["VersionId"], m["IsLatest"], True)
                    for m in page.get("DeleteMarkers", [])]
        # Versions and markers are two lists in S3's answer: put them back in order
        # (key, then newest first, which is the order of the listing).
        out += sorted(entries, key=lambda e: (e[0], not e[2]))
        if not page["IsTruncated"]:
            return out
        markers = {"KeyMarker": page["NextKeyMarker"],
                   "VersionIdMarker": page["NextVersionIdMarker"]}
    raise AssertionError("the listing did not end")


def test_versioning_is_off_until_enabled_and_takes_only_s3_states(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    fails("MalformedXML", 400, s3.put_bucket_versioning, Bucket=bucket,
          VersioningConfiguration={"Status": "Off"})
    fails("NoSuchBucket", 404, s3.put_bucket_versioning, Bucket="no-such-bucket-vv",
          VersioningConfiguration={"Status": "Enabled"})


def test_every_write_is_a_version_that_can_be_read_by_its_id(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")  # the null version
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two!")["VersionId"]
    assert len({v1, v2, "null"}) == 3
    assert body(s3, bucket, "k") == b"two!"
    got = s3.get_object(Bucket=bucket, Key="k", VersionId=v1)
    assert got["Body"].read() == b"one" and got["VersionId"] == v1
    assert body(s3, bucket, "k", VersionId="null") == b"before"
    head = s3.head_object(Bucket=bucket, Key="k", VersionId=v2)
    assert head["ContentLength"] == 4 and head["VersionId"] == v2
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == v2
    assert all_versions(s3, bucket) == [
        ("k", v2, True, False), ("k", v1, False, False), ("k", "null", False, False)]
    # A copy of an old version, and a multipart upload, are new versions too.
    copied = s3.copy_object(Bucket=bucket, Key="c",
                            CopySource={"Bucket": bucket, "Key": "k", "VersionId": v1})
    assert body(s3, bucket, "c", VersionId=copied["VersionId"]) == b"one"
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1,
                          Body=b"parts")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    v3 = done["VersionId"]
    assert v3 not in (v1, v2) and body(s3, bucket, "k") == b"parts"
    assert body(s3, bucket, "k", VersionId=v2) == b"two!"
    # Tags belong to one version.
    s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v1,
                          Tagging={"TagSet": [{"Key": "old", "Value": "yes"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=v1)["TagSet"] == [
        {"Key": "old", "Value": "yes"}]
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    # Ids this store never made are refused; well-formed ones that name nothing are 404.
    fails("InvalidArgument", 400, s3.get_object, Bucket=bucket, Key="k", VersionId="v1")
    fails("NoSuchVersion", 404, s3.get_object, Bucket=bucket, Key="k",
          VersionId="00000000000fffff")
    fails("NoSuchVersion", 404, s3.get_object, Bucket=bucket, Key="c", VersionId=v1)


def test_a_delete_writes_a_marker_that_hides_the_key_until_it_is_removed(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    out = s3.delete_object(Bucket=bucket, Key="k")
    marker = out["VersionId"]
    assert out["DeleteMarker"] is True and marker != v1
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert (error_code(e), status(e)) == ("NoSuchKey", 404)
    headers = e.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amz-delete-marker"] == "true"
    assert headers["x-amz-version-id"] == marker
    fails("MethodNotAllowed", 405, s3.get_object, Bucket=bucket, Key="k", VersionId=marker)
    # The old version is still there, by its id; listings show the key only as versions.
    assert body(s3, bucket, "k", VersionId=v1) == b"kept"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["other"]
    assert all_versions(s3, bucket, Prefix="k") == [
        ("k", marker, True, True), ("k", v1, False, False)]
    fails("BucketNotEmpty", 409, s3.delete_bucket, Bucket=bucket)
    # Removing the marker makes the version before it current again.
    out = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert out["DeleteMarker"] is True and out["VersionId"] == marker
    assert body(s3, bucket, "k") == b"kept"
    # Deleting a version that is not there succeeds, as in S3.
    s3.delete_object(Bucket=bucket, Key="k", VersionId="00000000000fffff")
    assert body(s3, bucket, "k") == b"kept"


def test_a_suspended_bucket_writes_and_replaces_the_null_version(s3, bucket):
    enable(s3, bucket)
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    enable(s3, bucket, "Suspended")
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"n1")["VersionId"] == "null"
    s3.put_object(Bucket=bucket, Key="k", Body=b"n2")
    assert all_versions(s3, bucket) == [("k", "null", True, False), ("k", kept, False, False)]
    assert body(s3, bucket, "k", VersionId="null") == b"n2"
    out = s3.delete_object(Bucket=bucket, Key="k")
    assert out["DeleteMarker"] is True and out["VersionId"] == "null"
    assert all_versions(s3, bucket) == [("k", "null", True, True), ("k", kept, False, False)]
    assert body(s3, bucket, "k", VersionId=kept) == b"versioned"


def test_list_object_versions_pages_through_versions_markers_and_prefixes(s3, bucket):
    enable(s3, bucket)
    for key in ["a", "b", "d/1", "d/2"]:
        for n in range(3):
            s3.put_object(Bucket=bucket, Key=key, Body=f"{key}{n}".encode())
    s3.delete_object(Bucket=bucket, Key="b")
    whole = all_versions(s3, bucket)
    assert len(whole) == 13
    assert [e[0] for e in whole] == ["a"] * 3 + ["b"] * 4 + ["d/1"] * 3 + ["d/2"] * 3
    assert [e[2] for e in whole if e[0] == "b"] == [True, False, False, False]
    for max_keys in [1, 2, 3, 5]:
        assert all_versions(s3, bucket, MaxKeys=max_keys) == whole, max_keys
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=1000)
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["d/"]
    assert {v["Key"] for v in page["Versions"]} == {"a", "b"}


def test_a_versioned_bucket_is_emptied_as_tools_do(s3, bucket):
    enable(s3, bucket)
    for n in range(4):
        s3.put_object(Bucket=bucket, Key=f"k{n % 2}", Body=b"x" * n)
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k0"}, {"Key": "k1"}]})
    entries = all_versions(s3, bucket)
    assert sum(1 for e in entries if e[3]) == 2
    out = s3.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": k, "VersionId": v} for k, v, _, _ in entries]})
    assert "Errors" not in out
    assert sorted((d["Key"], d["VersionId"]) for d in out["Deleted"]) == sorted(
        (k, v) for k, v, _, _ in entries)
    assert all_versions(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)


def test_versioning_and_version_reads_need_their_rights(server, s3, bucket):
    enable(s3, bucket)
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"v")["VersionId"]
    ak, sk = new_key(server, "reader")
    admin(server, "allow", ak, bucket, "--read")
    reader = server.client(access_key=ak, secret_key=sk)
    assert reader.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert reader.get_object(Bucket=bucket, Key="k", VersionId=version)["Body"].read() == b"v"
    fails("AccessDenied", 403, reader.put_bucket_versioning, Bucket=bucket,
          VersioningConfiguration={"Status": "Suspended"})
    fails("AccessDenied", 403, reader.delete_object, Bucket=bucket, Key="k", VersionId=version)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
