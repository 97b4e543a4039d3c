"""Object lock through boto3: the bucket's configuration (at creation and after, with a
default retention), retention and legal hold on PUT, copy and multipart and by
Put/GetObjectRetention and Put/GetObjectLegalHold, what they keep from DELETE
(GOVERNANCE yields to x-amz-bypass-governance-retention and its permission;
COMPLIANCE and legal hold to no one), and every error on the way."""

import datetime
import time
import uuid

from test_keys import admin, new_key
from test_policies import fails

GOV, COMP = "GOVERNANCE", "COMPLIANCE"


def locked_bucket(s3):
    name = "lock-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def later(seconds):
    return (datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(seconds=seconds)).replace(microsecond=0)


def test_lock_configuration_needs_versioning_and_then_keeps_it(s3, bucket):
    fails("ObjectLockConfigurationNotFoundError", 404,
          s3.get_object_lock_configuration, Bucket=bucket)
    enabled = {"ObjectLockEnabled": "Enabled"}
    fails("InvalidBucketState", 409, s3.put_object_lock_configuration, Bucket=bucket,
          ObjectLockConfiguration=enabled)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=enabled)
    got = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert got == enabled
    fails("InvalidBucketState", 409, s3.put_bucket_versioning, Bucket=bucket,
          VersioningConfiguration={"Status": "Suspended"})

    # At creation: versioning Enabled with it.
    made = locked_bucket(s3)
    assert s3.get_bucket_versioning(Bucket=made)["Status"] == "Enabled"
    assert s3.get_object_lock_configuration(Bucket=made)["ObjectLockConfiguration"] == enabled

    # A default retention, and the configurations S3 refuses.
    rule = {"DefaultRetention": {"Mode": GOV, "Years": 2}}
    s3.put_object_lock_configuration(Bucket=made, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": rule})
    got = s3.get_object_lock_configuration(Bucket=made)["ObjectLockConfiguration"]
    assert got["Rule"] == rule
    for bad, code in [({"Mode": GOV, "Days": 1, "Years": 1}, "MalformedXML"),
                      ({"Mode": GOV}, "MalformedXML"),
                      ({"Mode": GOV, "Days": 0}, "InvalidArgument")]:
        fails(code, 400, s3.put_object_lock_configuration, Bucket=made,
              ObjectLockConfiguration={"ObjectLockEnabled": "Enabled",
                                       "Rule": {"DefaultRetention": bad}})
    fails("NoSuchBucket", 404, s3.get_object_lock_configuration, Bucket="no-such-lock-b")


def test_governance_keeps_a_version_until_bypassed_and_only_lengthens(s3):
    b = locked_bucket(s3)
    until = later(3600)
    v = s3.put_object(Bucket=b, Key="k", Body=b"kept", ObjectLockMode=GOV,
                      ObjectLockRetainUntilDate=until)["VersionId"]
    head = s3.head_object(Bucket=b, Key="k")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == (GOV, until)
    got = s3.get_object(Bucket=b, Key="k", VersionId=v)
    assert got["ObjectLockMode"] == GOV and got["Body"].read() == b"kept"
    assert s3.get_object_retention(Bucket=b, Key="k", VersionId=v)["Retention"] == {
        "Mode": GOV, "RetainUntilDate": until}

    fails("AccessDenied", 403, s3.delete_object, Bucket=b, Key="k", VersionId=v)
    # A DELETE without a version id only writes a marker: allowed, and v stays.
    assert s3.delete_object(Bucket=b, Key="k")["DeleteMarker"]
    assert s3.get_object(Bucket=b, Key="k", VersionId=v)["Body"].read() == b"kept"

    # Shortening or removing needs the bypass; lengthening does not.
    fails("AccessDenied", 403, s3.put_object_retention, Bucket=b, Key="k", VersionId=v,
          Retention={"Mode": GOV, "RetainUntilDate": later(60)})
    longer = later(7200)
    s3.put_object_retention(Bucket=b, Key="k", VersionId=v,
                            Retention={"Mode": GOV, "RetainUntilDate": longer})
    assert s3.get_object_retention(Bucket=b, Key="k", VersionId=v)[
        "Retention"]["RetainUntilDate"] == longer
    s3.put_object_retention(Bucket=b, Key="k", VersionId=v, BypassGovernanceRetention=True,
                            Retention={"Mode": GOV, "RetainUntilDate": later(60)})
    s3.delete_object(Bucket=b, Key="k", VersionId=v, BypassGovernanceRetention=True)
    fails("NoSuchVersion", 404, s3.get_object, Bucket=b, Key="k", VersionId=v)


def test_compliance_and_legal_hold_yield_to_no_one(s3):
    b = locked_bucket(s3)
    v = s3.put_object(Bucket=b, Key="c", Body=b"c", ObjectLockMode=COMP,
                      ObjectLockRetainUntilDate=later(3))["VersionId"]
    fails("AccessDenied", 403, s3.delete_object, Bucket=b, Key="c", VersionId=v,
          BypassGovernanceRetention=True)
    for retention in [{"Mode": GOV, "RetainUntilDate": later(3600)},
                      {"Mode": COMP, "RetainUntilDate": later(1)}]:
        fails("AccessDenied", 403, s3.put_object_retention, Bucket=b, Key="c",
              VersionId=v, BypassGovernanceRetention=True, Retention=retention)

    h = s3.put_object(Bucket=b, Key="h", Body=b"h",
                      ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.head_object(Bucket=b, Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    assert s3.get_object_legal_hold(Bucket=b, Key="h")["LegalHold"] == {"Status": "ON"}
    fails("AccessDenied", 403, s3.delete_object, Bucket=b, Key="h", VersionId=h,
          BypassGovernanceRetention=True)
    s3.put_object_legal_hold(Bucket=b, Key="h", VersionId=h, LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=b, Key="h", VersionId=h)

    # Once its date has passed, a compliance version goes like any other.
    time.sleep(4)
    s3.delete_object(Bucket=b, Key="c", VersionId=v)
    assert s3.list_object_versions(Bucket=b).get("Versions", []) == []


def test_default_retention_and_locks_on_copy_and_multipart(s3):
    b = locked_bucket(s3)
    s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": GOV, "Days": 1}}})
    before = datetime.datetime.now(datetime.timezone.utc)
    s3.put_object(Bucket=b, Key="d", Body=b"d")
    r = s3.get_object_retention(Bucket=b, Key="d")["Retention"]
    assert r["Mode"] == GOV
    day = r["RetainUntilDate"] - before
    assert datetime.timedelta(hours=23) < day < datetime.timedelta(hours=25), day

    # Explicit headers win over the default, on a copy and on a multipart upload.
    until = later(600)
    s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "d"},
                   ObjectLockMode=COMP, ObjectLockRetainUntilDate=until)
    assert s3.get_object_retention(Bucket=b, Key="copy")["Retention"] == {
        "Mode": COMP, "RetainUntilDate": until}
    up = s3.create_multipart_upload(Bucket=b, Key="mp", ObjectLockMode=COMP,
                                    ObjectLockRetainUntilDate=until,
                                    ObjectLockLegalHoldStatus="ON")["UploadId"]
    etag = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"p")["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    head = s3.head_object(Bucket=b, Key="mp")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"],
            head["ObjectLockLegalHoldStatus"]) == (COMP, until, "ON")


def test_lock_requests_are_checked(s3, bucket):
    until = later(600)
    fails("InvalidRequest", 400, s3.put_object, Bucket=bucket, Key="k", Body=b"x",
          ObjectLockMode=GOV, ObjectLockRetainUntilDate=until)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    fails("InvalidRequest", 400, s3.get_object_retention, Bucket=bucket, Key="k")
    fails("InvalidRequest", 400, s3.put_object_legal_hold, Bucket=bucket, Key="k",
          LegalHold={"Status": "ON"})

    b = locked_bucket(s3)
    fails("InvalidArgument", 400, s3.put_object, Bucket=b, Key="k", Body=b"x",
          ObjectLockMode=GOV, ObjectLockRetainUntilDate=later(-60))
    fails("InvalidArgument", 400, s3.put_object, Bucket=b, Key="k", Body=b"x",
          ObjectLockMode=GOV)
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    fails("NoSuchObjectLockConfiguration", 404, s3.get_object_retention, Bucket=b, Key="k")
    fails("NoSuchObjectLockConfiguration", 404, s3.get_object_legal_hold, Bucket=b, Key="k")
    fails("NoSuchKey", 404, s3.get_object_retention, Bucket=b, Key="absent")
    fails("InvalidArgument", 400, s3.put_object_retention, Bucket=b, Key="k",
          Retention={"Mode": GOV, "RetainUntilDate": later(-60)})


def test_bypass_needs_its_permission_and_delete_objects_reports_locked_keys(server, s3):
    b = locked_bucket(s3)
    kept = s3.put_object(Bucket=b, Key="kept", Body=b"1", ObjectLockMode=GOV,
                         ObjectLockRetainUntilDate=later(3600))["VersionId"]
    free = s3.put_object(Bucket=b, Key="free", Body=b"2")["VersionId"]
    ak, sk = new_key(server, "locker")
    admin(server, "allow", ak, b, "--read", "--write")
    writer = server.client(ak, sk)
    fails("AccessDenied", 403, writer.delete_object, Bucket=b, Key="kept", VersionId=kept,
          BypassGovernanceRetention=True)
    fails("AccessDenied", 403, writer.put_object_lock_configuration, Bucket=b,
          ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})

    out = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "kept", "VersionId": kept}, {"Key": "free", "VersionId": free}]})
    assert [d["Key"] for d in out.get("Deleted", [])] == ["free"]
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("kept", "AccessDenied")]
    # The owner (the root key) may bypass governance.
    out = s3.delete_objects(Bucket=b, BypassGovernanceRetention=True, Delete={"Objects": [
        {"Key": "kept", "VersionId": kept}]})
    assert [d["Key"] for d in out["Deleted"]] == ["kept"] and "Errors" not in out
    s3.delete_bucket(Bucket=b)
