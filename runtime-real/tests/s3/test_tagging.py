"""Object and bucket tagging through boto3: Put/Get/DeleteObjectTagging,
Put/Get/DeleteBucketTagging, x-amz-tagging on PUT, copy and multipart, the tag count on
GET, S3's rules for tag sets, `s3:ExistingObjectTag` in bucket policies, and who may do
each (the root key, keys with and without rights, anonymous callers)."""

import json

import botocore.exceptions
import pytest

from conftest import error_code
from test_keys import admin, name, new_key
from test_policies import anonymous, each_principal, fails, wrong_decisions


def tagset(**tags):
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tags_of(s3, bucket, key):
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_object_tags_are_put_read_replaced_and_deleted(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    s3.put_object_tagging(Bucket=bucket, Key="k",
                          Tagging={"TagSet": tagset(team="db", env="prod")})
    # The tag set comes back as it was put, in its order.
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == tagset(team="db", env="prod")
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tagset(only="one")})
    assert tags_of(s3, bucket, "k") == {"only": "one"}
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    fails("NoSuchKey", 404, s3.get_object_tagging, Bucket=bucket, Key="missing")
    fails("NoSuchKey", 404, s3.put_object_tagging, Bucket=bucket, Key="missing",
          Tagging={"TagSet": tagset(a="b")})
    fails("NoSuchBucket", 404, s3.get_object_tagging, Bucket=name(), Key="k")


def test_a_put_copy_or_upload_tags_its_new_version_and_an_overwrite_does_not_keep_them(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", Tagging="a=1&b%20c=d%2Fe&empty=")
    assert tags_of(s3, bucket, "k") == {"a": "1", "b c": "d/e", "empty": ""}
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 3
    # A copy takes the source's tags unless told to replace them.
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "k"})
    assert tags_of(s3, bucket, "copied") == {"a": "1", "b c": "d/e", "empty": ""}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource={"Bucket": bucket, "Key": "k"},
                   TaggingDirective="REPLACE", Tagging="new=yes")
    assert tags_of(s3, bucket, "replaced") == {"new": "yes"}
    s3.copy_object(Bucket=bucket, Key="bare", CopySource={"Bucket": bucket, "Key": "k"},
                   TaggingDirective="REPLACE")
    assert tags_of(s3, bucket, "bare") == {}
    # An overwrite is a new version: it has the tags its own request gave, or none.
    s3.put_object(Bucket=bucket, Key="k", Body=b"w")
    assert tags_of(s3, bucket, "k") == {}
    # Multipart: the tags given at creation are the completed object's.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="part=of&the=upload")
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                          Body=b"x" * 100)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert tags_of(s3, bucket, "mp") == {"part": "of", "the": "upload"}
    # A refused tag header writes nothing.
    fails("InvalidTag", 400, s3.put_object, Bucket=bucket, Key="dup", Body=b"v", Tagging="a=1&a=2")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="dup")
    assert error_code(e) == "404"


def test_tag_sets_follow_s3_rules(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    bad = [
        tagset(**{f"k{i}": "v" for i in range(11)}),       # more than 10
        [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],  # a key twice
        [{"Key": "k" * 129, "Value": "v"}],                  # a key too long
        [{"Key": "k", "Value": "v" * 257}],                  # a value too long
        [{"Key": "aws:reserved", "Value": "v"}],             # the aws: prefix
        [{"Key": "k", "Value": "<script>"}],                 # a character S3 refuses
    ]
    for tags in bad:
        fails("InvalidTag", 400, s3.put_object_tagging, Bucket=bucket, Key="k",
              Tagging={"TagSet": tags})
    assert tags_of(s3, bucket, "k") == {}
    fine = [{"Key": "k" * 128, "Value": "v" * 256}, {"Key": "ключ é", "Value": "+-=._:/@ x"}]
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": fine})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == fine
    fails("InvalidArgument", 400, s3.copy_object, Bucket=bucket, Key="c",
          CopySource={"Bucket": bucket, "Key": "k"}, TaggingDirective="SOMETIMES")


def test_bucket_tags_are_put_read_and_deleted_and_go_with_the_bucket(s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    fails("NoSuchTagSet", 404, s3.get_bucket_tagging, Bucket=bucket)
    tags = tagset(**{f"cost{i}": str(i) for i in range(50)})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags
    fails("InvalidTag", 400, s3.put_bucket_tagging, Bucket=bucket,
          Tagging={"TagSet": tags + tagset(one="more")})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tagset(team="web")})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tagset(team="web")
    s3.delete_bucket_tagging(Bucket=bucket)
    fails("NoSuchTagSet", 404, s3.get_bucket_tagging, Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tagset(team="web")})
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    fails("NoSuchTagSet", 404, s3.get_bucket_tagging, Bucket=bucket)
    fails("NoSuchBucket", 404, s3.get_bucket_tagging, Bucket=name())


def test_a_policy_can_allow_and_deny_by_existing_object_tags(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="open", Body=b"o", Tagging="class=public")
    s3.put_object(Bucket=bucket, Key="held", Body=b"h", Tagging="class=public&hold=yes")
    s3.put_object(Bucket=bucket, Key="closed", Body=b"c", Tagging="class=private")
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p")
    objects = f"arn:aws:s3:::{bucket}/*"
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": objects,
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "public"}}},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": objects,
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/hold": "yes"}}}]}))
    anon = anonymous(server)
    assert anon.get_object(Bucket=bucket, Key="open")["Body"].read() == b"o"
    for key in ("held", "closed", "plain"):
        fails("AccessDenied", 403, anon.get_object, Bucket=bucket, Key=key)
    # Retagging changes what the policy allows at once.
    s3.put_object_tagging(Bucket=bucket, Key="closed", Tagging={"TagSet": tagset(**{"class": "public"})})
    assert anon.get_object(Bucket=bucket, Key="closed")["Body"].read() == b"c"
    s3.delete_object_tagging(Bucket=bucket, Key="open")
    fails("AccessDenied", 403, anon.get_object, Bucket=bucket, Key="open")
    # The Deny binds a key with a read grant too; the root key is never refused.
    ak, sk = new_key(server, "tagged-reader")
    admin(server, "allow", ak, bucket, "--read")
    reader = server.client(ak, sk)
    assert reader.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"p"
    fails("AccessDenied", 403, reader.get_object, Bucket=bucket, Key="held")
    assert s3.get_object(Bucket=bucket, Key="held")["Body"].read() == b"h"


def test_every_tagging_operation_by_each_principal(server, s3):
    """Allowed means anything but AccessDenied; reading tags needs read, writing them
    write, a bucket's tags the owner right (reading them: read)."""
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    principals = each_principal(server, s3, bucket, {
        "owner": ("--read", "--write", "--owner"), "writer": ("--read", "--write"),
        "reader": ("--read",)})
    b = {"Bucket": bucket}
    reads = {"root", "owner", "writer", "reader"}
    writes = {"root", "owner", "writer"}
    owners = {"root", "owner"}
    tagging = {"TagSet": tagset(a="b")}
    operations = [
        ("put_object_tagging", {**b, "Key": "k", "Tagging": tagging}, writes),
        ("get_object_tagging", {**b, "Key": "k"}, reads),
        ("delete_object_tagging", {**b, "Key": "k"}, writes),
        ("put_object", {**b, "Key": "t", "Body": b"x", "Tagging": "a=b"}, writes),
        ("put_bucket_tagging", {**b, "Tagging": tagging}, owners),
        ("get_bucket_tagging", b, reads),
        ("delete_bucket_tagging", b, owners),
    ]
    assert wrong_decisions(operations, principals) == []
