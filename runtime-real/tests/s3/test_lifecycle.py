"""Lifecycle through boto3, on a server whose "day" is one second
(`--lifecycle-day-seconds 1`): Put/Get/DeleteBucketLifecycleConfiguration and the
configurations S3 refuses; current versions expiring by prefix, size and tag (and
nothing their rules do not match); noncurrent versions and lone delete markers on a
versioned bucket; a locked version kept past its rule; incomplete uploads aborted; and
the progress metric."""

import datetime
import os
import tempfile
import uuid

import pytest

from conftest import Server, free_port
from test_keys import denied, new_key, admin
from test_operate import scrape, wait_for
from test_policies import fails

# A rule of 1 day acts 1-2 s after the object's creation (rounded up to the next
# "day"), and a pass runs every 250 ms: 20 s is ample on a loaded machine.
EXPIRY_WAIT_S = 20


@pytest.fixture(scope="module")
def fast():
    with tempfile.TemporaryDirectory(prefix="hamster-lifecycle-") as tmp:
        metrics_port = free_port()
        s = Server(os.path.join(tmp, "data"),
                   ["--lifecycle-day-seconds", "1",
                    "--metrics", f"127.0.0.1:{metrics_port}"]).start()
        s.metrics = f"http://127.0.0.1:{metrics_port}"
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture
def s3f(fast):
    return fast.client()


def new_bucket(s3, versioned=False, **kwargs):
    name = "lc-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name, **kwargs)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def rules(s3, bucket, *rules):
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration={"Rules": list(rules)})


def keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_configuration_round_trips_and_bad_ones_are_refused(server, s3, bucket):
    fails("NoSuchLifecycleConfiguration", 404, s3.get_bucket_lifecycle_configuration,
          Bucket=bucket)
    given = [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
         "Expiration": {"Days": 30}},
        {"ID": "tmp-small", "Status": "Disabled",
         "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "class", "Value": "tmp"}],
                            "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 4096}},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2},
         "Expiration": {"Days": 1}},
        {"ID": "markers", "Status": "Enabled", "Prefix": "m/",
         "Expiration": {"ExpiredObjectDeleteMarker": True}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}},
        {"ID": "dated", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
         "Expiration": {"Date": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)}},
    ]
    rules(s3, bucket, *given)
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == given

    midday = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.timezone.utc)
    for rule, code in [
        ({"Expiration": {"Days": 0}}, "InvalidArgument"),
        ({"Expiration": {"Date": midday}}, "InvalidArgument"),
        ({}, "InvalidRequest"),
        ({"Expiration": {"Days": 1, "ExpiredObjectDeleteMarker": True}}, "MalformedXML"),
        ({"NoncurrentVersionExpiration": {"NoncurrentDays": 0}}, "InvalidArgument"),
        ({"Filter": {"Tag": {"Key": "a", "Value": "b"}},
          "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}, "InvalidRequest"),
        ({"Filter": {"Tag": {"Key": "a", "Value": "b"}},
          "Expiration": {"ExpiredObjectDeleteMarker": True}}, "InvalidRequest"),
    ]:
        rule = {"ID": "bad", "Status": "Enabled", "Filter": {"Prefix": ""}, **rule}
        fails(code, 400, rules, s3, bucket, rule)
    twice = {"ID": "same", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}
    fails("InvalidArgument", 400, rules, s3, bucket, twice, twice)
    # A refused configuration changed nothing.
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == given

    # Only the bucket's owner may read or change it.
    ak, sk = new_key(server, "lifecycle-reader")
    admin(server, "allow", ak, bucket, "--read", "--write")
    other = server.client(access_key=ak, secret_key=sk)
    denied(other.get_bucket_lifecycle_configuration, Bucket=bucket)
    denied(other.delete_bucket_lifecycle, Bucket=bucket)

    s3.delete_bucket_lifecycle(Bucket=bucket)
    fails("NoSuchLifecycleConfiguration", 404, s3.get_bucket_lifecycle_configuration,
          Bucket=bucket)
    fails("NoSuchBucket", 404, s3.get_bucket_lifecycle_configuration, Bucket="no-such-lc-b")


def test_current_versions_expire_by_prefix_size_and_tag_and_nothing_else_does(fast, s3f):
    b = new_bucket(s3f)
    rules(s3f, b,
          {"ID": "small-tmp", "Status": "Enabled",
           "Filter": {"And": {"Prefix": "tmp/", "ObjectSizeLessThan": 100}},
           "Expiration": {"Days": 1}},
          {"ID": "tagged", "Status": "Enabled",
           "Filter": {"Tag": {"Key": "expire", "Value": "yes"}},
           "Expiration": {"Days": 1}},
          {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "off/"},
           "Expiration": {"Days": 1}})
    s3f.put_object(Bucket=b, Key="tmp/small", Body=b"x" * 10)
    s3f.put_object(Bucket=b, Key="tmp/big", Body=b"x" * 1000)
    s3f.put_object(Bucket=b, Key="keep/a", Body=b"kept")
    s3f.put_object(Bucket=b, Key="t/tagged", Body=b"t", Tagging="expire=yes")
    s3f.put_object(Bucket=b, Key="t/other-tag", Body=b"t", Tagging="expire=no")
    s3f.put_object(Bucket=b, Key="off/a", Body=b"o")
    survivors = ["keep/a", "off/a", "t/other-tag", "tmp/big"]
    wait_for(lambda: keys(s3f, b) == survivors, "the matching objects to expire",
             timeout=EXPIRY_WAIT_S)
    for key in survivors:
        s3f.get_object(Bucket=b, Key=key)["Body"].read()
    fails("NoSuchKey", 404, s3f.get_object, Bucket=b, Key="tmp/small")

    before = scrape(fast)
    assert before.get('hamster_lifecycle_expired_total{kind="Current"}', 0) >= 2, before
    assert before["hamster_lifecycle_passes_total"] >= 1


def test_versions_noncurrent_and_lone_markers_expire_and_current_ones_get_a_marker(s3f):
    b = new_bucket(s3f, versioned=True)
    rules(s3f, b,
          {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "v/"},
           "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
           "Expiration": {"ExpiredObjectDeleteMarker": True}},
          {"ID": "keep-one", "Status": "Enabled", "Filter": {"Prefix": "k/"},
           "NoncurrentVersionExpiration": {"NoncurrentDays": 1,
                                           "NewerNoncurrentVersions": 1}},
          {"ID": "current", "Status": "Enabled", "Filter": {"Prefix": "c/"},
           "Expiration": {"Days": 1}})
    for body in (b"1", b"2"):
        s3f.put_object(Bucket=b, Key="v/gone", Body=body)
    s3f.delete_object(Bucket=b, Key="v/gone")
    s3f.put_object(Bucket=b, Key="v/live", Body=b"only")
    kept = [s3f.put_object(Bucket=b, Key="k/a", Body=body)["VersionId"]
            for body in (b"1", b"2", b"3")]
    made = s3f.put_object(Bucket=b, Key="c/a", Body=b"c")["VersionId"]

    def listing():
        out = s3f.list_object_versions(Bucket=b)
        versions = sorted((v["Key"], v["VersionId"], v["IsLatest"])
                          for v in out.get("Versions", []))
        markers = sorted((m["Key"], m["IsLatest"]) for m in out.get("DeleteMarkers", []))
        return versions, markers

    def settled():
        versions, markers = listing()
        keys_seen = {v[0] for v in versions} | {m[0] for m in markers}
        return "v/gone" not in keys_seen and len([v for v in versions if v[0] == "k/a"]) == 2 \
            and markers == [("c/a", True)]

    wait_for(settled, "noncurrent versions and the lone marker to go", timeout=EXPIRY_WAIT_S)
    versions, markers = listing()
    live = [v for v in versions if v[0] == "v/live"]
    assert len(live) == 1 and live[0][2], versions
    # The newest noncurrent version of k/a is kept, with the current one.
    assert [v[1] for v in versions if v[0] == "k/a"] == sorted(kept[1:]), versions
    # c/a's version is kept, noncurrent, under the marker its expiry wrote.
    assert ("c/a", made, False) in versions
    assert s3f.get_object(Bucket=b, Key="c/a", VersionId=made)["Body"].read() == b"c"


def test_a_locked_version_outlives_its_rule(s3f):
    b = new_bucket(s3f, ObjectLockEnabledForBucket=True)
    rules(s3f, b, {"ID": "old", "Status": "Enabled", "Filter": {},
                   "NoncurrentVersionExpiration": {"NoncurrentDays": 1}})
    until = (datetime.datetime.now(datetime.timezone.utc)
             + datetime.timedelta(days=1)).replace(microsecond=0)
    locked = s3f.put_object(Bucket=b, Key="k", Body=b"locked", ObjectLockMode="COMPLIANCE",
                            ObjectLockRetainUntilDate=until)["VersionId"]
    free = s3f.put_object(Bucket=b, Key="k", Body=b"free")["VersionId"]
    s3f.put_object(Bucket=b, Key="k", Body=b"current")

    def ids():
        return sorted(v["VersionId"] for v in s3f.list_object_versions(Bucket=b)["Versions"])

    wait_for(lambda: free not in ids(), "the unlocked noncurrent version to go",
             timeout=EXPIRY_WAIT_S)
    assert locked in ids()
    got = s3f.get_object(Bucket=b, Key="k", VersionId=locked)["Body"].read()
    assert got == b"locked"


def test_incomplete_uploads_are_aborted_where_a_rule_says(fast, s3f):
    b = new_bucket(s3f)
    rules(s3f, b, {"ID": "abort", "Status": "Enabled", "Filter": {"Prefix": "up/"},
                   "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}})
    gone = s3f.create_multipart_upload(Bucket=b, Key="up/a")["UploadId"]
    s3f.upload_part(Bucket=b, Key="up/a", UploadId=gone, PartNumber=1, Body=b"p")
    stays = s3f.create_multipart_upload(Bucket=b, Key="other/b")["UploadId"]

    def uploads():
        return sorted(u["UploadId"] for u in
                      s3f.list_multipart_uploads(Bucket=b).get("Uploads", []))

    wait_for(lambda: uploads() == [stays], "the matching upload to be aborted",
             timeout=EXPIRY_WAIT_S)
    fails("NoSuchUpload", 404, s3f.list_parts, Bucket=b, Key="up/a", UploadId=gone)
    assert scrape(fast)['hamster_lifecycle_expired_total{kind="Upload"}'] >= 1
