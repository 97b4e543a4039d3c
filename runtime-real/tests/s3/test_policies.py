"""Bucket policies, ACLs, the public access block and ownership controls, with four
principals: the root key, a key granted rights, a key without any, and anonymous
requests (boto3 unsigned, and bare urllib). An anonymous request succeeds exactly where
a policy or an ACL allows it; every refusal is 403 AccessDenied with S3's body."""

import json
import urllib.error
import urllib.request

import botocore
import botocore.exceptions
import pytest

from conftest import error_code, status
from test_keys import admin, denied, name, new_key


def public_read(bucket, prefix="*"):
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/{prefix}"],
        }],
    })


def anonymous(server):
    return server.client(signature_version=botocore.UNSIGNED)


def fails(code, http_status, call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    assert (error_code(e), status(e)) == (code, http_status), e.value.response


def each_principal(server, s3, bucket, rights):
    """The root key; a new key per entry of `rights` (name -> its grant flags on
    `bucket`); a key without rights; anonymous callers. Clients by name."""
    out = {"root": s3}
    for who, flags in rights.items():
        ak, sk = new_key(server, who)
        admin(server, "allow", ak, bucket, *flags)
        out[who] = server.client(ak, sk)
    out["none"] = server.client(*new_key(server, "none"))
    out["anonymous"] = anonymous(server)
    return out


def wrong_decisions(operations, principals):
    """Each (operation, arguments, principals allowed) made by every principal: the
    ones refused that should be allowed, and allowed that should be refused. Allowed
    means anything but AccessDenied, which is always a 403."""
    wrong = []
    for op, args, allowed in operations:
        for who, client in principals.items():
            try:
                getattr(client, op)(**args)
                refused = False
            except botocore.exceptions.ClientError as e:
                refused = e.response["Error"]["Code"] == "AccessDenied"
                if refused:
                    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            if refused == (who in allowed):
                wrong.append(f"{op} by {who}: {'refused' if refused else 'allowed'}")
    return wrong


def url_get(server, path):
    try:
        with urllib.request.urlopen(server.endpoint + path, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_public_read_policy_opens_gets_to_anyone_and_nothing_else(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"<h1>hi</h1>")
    s3.put_object(Bucket=bucket, Key="private/secret", Body=b"no")
    anon = anonymous(server)
    denied(anon.get_object, Bucket=bucket, Key="site/index.html")
    assert url_get(server, f"/{bucket}/site/index.html")[0] == 403

    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket, "site/*"))
    assert anon.get_object(Bucket=bucket, Key="site/index.html")["Body"].read() == b"<h1>hi</h1>"
    assert url_get(server, f"/{bucket}/site/index.html") == (200, b"<h1>hi</h1>")
    assert anon.head_object(Bucket=bucket, Key="site/index.html")["ContentLength"] == 11
    denied(anon.get_object, Bucket=bucket, Key="private/secret")
    denied(anon.put_object, Bucket=bucket, Key="site/x", Body=b"defaced")
    denied(anon.delete_object, Bucket=bucket, Key="site/index.html")
    denied(anon.list_objects_v2, Bucket=bucket)
    denied(anon.get_bucket_policy, Bucket=bucket)
    denied(anon.list_buckets)
    # A missing key is refused, not reported missing, to a caller who may not list.
    denied(anon.get_object, Bucket=bucket, Key="site/none")
    # A signed key with no grant gets what the policy gives anyone.
    ak, sk = new_key(server, "stranger")
    stranger = server.client(ak, sk)
    assert stranger.get_object(Bucket=bucket, Key="site/index.html")["Body"].read()
    denied(stranger.get_object, Bucket=bucket, Key="private/secret")

    got = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert json.loads(got) == json.loads(public_read(bucket, "site/*"))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    s3.delete_bucket_policy(Bucket=bucket)
    fails("NoSuchBucketPolicy", 404, s3.get_bucket_policy, Bucket=bucket)
    fails("NoSuchBucketPolicy", 404, s3.get_bucket_policy_status, Bucket=bucket)
    denied(anon.get_object, Bucket=bucket, Key="site/index.html")


def test_an_explicit_deny_beats_a_grant_and_an_allow(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="keep/a", Body=b"a")
    ak, sk = new_key(server, "writer")
    admin(server, "allow", ak, bucket, "--read", "--write")
    app = server.client(ak, sk)
    app.put_object(Bucket=bucket, Key="keep/b", Body=b"b")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": {"AWS": [ak]}, "Action": "s3:DeleteObject",
         "Resource": f"arn:aws:s3:::{bucket}/keep/*"},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"},
    ]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    denied(app.delete_object, Bucket=bucket, Key="keep/a")
    # DeleteObjects is decided per key, as S3 does: the denied key is an error entry,
    # the others are deleted, and the answer is 200 (quiet or not).
    app.put_object(Bucket=bucket, Key="tmp/y", Body=b"y")
    app.put_object(Bucket=bucket, Key="tmp/z", Body=b"z")
    out = app.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep/a"}, {"Key": "tmp/y"}]})
    assert [d["Key"] for d in out.get("Deleted", [])] == ["tmp/y"], out
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("keep/a", "AccessDenied")], out
    out = app.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep/a"}, {"Key": "tmp/z"}],
                                                    "Quiet": True})
    assert "Deleted" not in out and [e["Key"] for e in out["Errors"]] == ["keep/a"], out
    # Without any right to the bucket, every key is refused, and none is deleted.
    stranger = server.client(*new_key(server, "stranger"))
    out = stranger.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep/a"}]})
    assert [e["Key"] for e in out["Errors"]] == ["keep/a"], out
    app.put_object(Bucket=bucket, Key="tmp/x", Body=b"x")
    app.delete_object(Bucket=bucket, Key="tmp/x")
    # The root key is not bound by the policy.
    s3.delete_object(Bucket=bucket, Key="keep/b")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep/a"]
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True


def test_conditions_on_source_ip_prefix_and_transport(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    for k in ["pub/a", "pub/b", "priv/c"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
         "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": "pub/*"}}},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
    ]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    # Allowed from a source IP in the range only: this client is 127.0.0.1.
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    anon = anonymous(server)
    assert anon.get_object(Bucket=bucket, Key="priv/c")["Body"].read() == b"x"
    keys = [o["Key"] for o in anon.list_objects_v2(Bucket=bucket, Prefix="pub/")["Contents"]]
    assert keys == ["pub/a", "pub/b"]
    denied(anon.list_objects_v2, Bucket=bucket, Prefix="priv/")
    denied(anon.list_objects_v2, Bucket=bucket)
    # Plain HTTP here: aws:SecureTransport is false.
    denied(anon.put_object, Bucket=bucket, Key="pub/new", Body=b"x")

    other = dict(policy)
    other["Statement"] = [dict(policy["Statement"][1])]
    other["Statement"][0]["Condition"] = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(other))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    denied(anon.get_object, Bucket=bucket, Key="priv/c")


def test_malformed_policies_are_refused_and_only_the_owner_may_set_one(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    bad = [
        "not json",
        json.dumps({"Version": "2012-10-17"}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:Fly",
                                   "Resource": f"arn:aws:s3:::{bucket}/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                   "Action": "s3:GetObject",
                                   "Resource": "arn:aws:s3:::some-other-bucket/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                   "Action": "s3:GetObject",
                                   "Resource": f"arn:aws:s3:::{bucket}/*",
                                   "Condition": {"StringEquals": {"aws:Unknown": "x"}}}]}),
    ]
    for text in bad:
        fails("MalformedPolicy", 400, s3.put_bucket_policy, Bucket=bucket, Policy=text)
    fails("NoSuchBucketPolicy", 404, s3.get_bucket_policy, Bucket=bucket)
    fails("NoSuchBucket", 404, s3.put_bucket_policy, Bucket=name(),
          Policy=public_read("x"))

    ak, sk = new_key(server, "reader")
    admin(server, "allow", ak, bucket, "--read", "--write")
    app = server.client(ak, sk)
    denied(app.put_bucket_policy, Bucket=bucket, Policy=public_read(bucket))
    denied(app.get_bucket_policy, Bucket=bucket)
    admin(server, "allow", ak, bucket, "--owner")
    app.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    assert json.loads(app.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]


def test_canned_acls_on_buckets_and_objects(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private", Body=b"p")
    s3.put_object(Bucket=bucket, Key="shared", Body=b"s", ACL="public-read")
    anon = anonymous(server)
    # A public-read bucket lists to anyone; its objects are their own ACL's business.
    assert {o["Key"] for o in anon.list_objects_v2(Bucket=bucket)["Contents"]} == {
        "private", "shared"}
    assert anon.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"s"
    denied(anon.get_object, Bucket=bucket, Key="private")
    denied(anon.put_object, Bucket=bucket, Key="x", Body=b"x")

    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"] and acl["Owner"]["DisplayName"]
    uris = [g["Grantee"].get("URI") for g in acl["Grants"]]
    assert "http://acs.amazonaws.com/groups/global/AllUsers" in uris
    obj_acl = s3.get_object_acl(Bucket=bucket, Key="shared")
    assert {(g["Grantee"].get("URI"), g["Permission"]) for g in obj_acl["Grants"]} >= {
        ("http://acs.amazonaws.com/groups/global/AllUsers", "READ")}
    private = s3.get_object_acl(Bucket=bucket, Key="private")["Grants"]
    assert [g["Permission"] for g in private] == ["FULL_CONTROL"]

    # Setting an ACL afterwards, and overwriting an object, which starts private again.
    s3.put_object_acl(Bucket=bucket, Key="private", ACL="public-read")
    assert anon.get_object(Bucket=bucket, Key="private")["Body"].read() == b"p"
    s3.put_object(Bucket=bucket, Key="private", Body=b"p2")
    denied(anon.get_object, Bucket=bucket, Key="private")
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    denied(anon.list_objects_v2, Bucket=bucket)
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    anon.put_object(Bucket=bucket, Key="dropbox", Body=b"d")
    assert s3.get_object(Bucket=bucket, Key="dropbox")["Body"].read() == b"d"

    fails("InvalidArgument", 400, s3.put_object_acl, Bucket=bucket, Key="shared",
          ACL="not-a-canned-acl")
    fails("NoSuchKey", 404, s3.put_object_acl, Bucket=bucket, Key="none", ACL="private")


def test_grants_to_keys_and_groups_through_documents_and_headers(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    ak, sk = new_key(server, "friend")
    friend = server.client(ak, sk)
    denied(friend.get_object, Bucket=bucket, Key="k")
    owner = s3.get_object_acl(Bucket=bucket, Key="k")["Owner"]
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={
        "Owner": owner,
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]},
             "Permission": "FULL_CONTROL"},
            {"Grantee": {"Type": "CanonicalUser", "ID": ak}, "Permission": "READ"},
        ]})
    assert friend.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    grants = s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]
    assert {"ID": ak, "DisplayName": "friend", "Type": "CanonicalUser"} in [
        g["Grantee"] for g in grants]
    denied(anonymous(server).get_object, Bucket=bucket, Key="k")
    s3.put_bucket_acl(Bucket=bucket,
                      GrantRead='uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers"')
    assert [o["Key"] for o in friend.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    denied(anonymous(server).list_objects_v2, Bucket=bucket)
    fails("MalformedACLError", 400, s3.put_bucket_acl, Bucket=bucket, GrantRead="nonsense")


def test_public_access_block_refuses_and_ignores_public_acls_and_policies(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read")
    anon = anonymous(server)
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    fails("NoSuchPublicAccessBlockConfiguration", 404, s3.get_public_access_block,
          Bucket=bucket)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    got = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                   "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    denied(anon.get_object, Bucket=bucket, Key="k")
    denied(s3.put_object, Bucket=bucket, Key="k2", Body=b"v", ACL="public-read")
    denied(s3.put_bucket_acl, Bucket=bucket, ACL="public-read")
    denied(s3.put_bucket_policy, Bucket=bucket, Policy=public_read(bucket))

    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "RestrictPublicBuckets": True})
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    # The ACL counts again, the public policy does not (restricted to keys).
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    denied(anon.get_object, Bucket=bucket, Key="k")
    ak, sk = new_key(server, "pab")
    assert server.client(ak, sk).get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    s3.delete_public_access_block(Bucket=bucket)
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_bucket_owner_enforced_turns_acls_off(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced")
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    fails("AccessControlListNotSupported", 400, s3.put_object, Bucket=bucket, Key="k",
          Body=b"v", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="bucket-owner-full-control")
    fails("AccessControlListNotSupported", 400, s3.put_bucket_acl, Bucket=bucket,
          ACL="public-read")
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert anonymous(server).get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    # Enforced again: the stored public ACL no longer counts.
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    denied(anonymous(server).get_object, Bucket=bucket, Key="k")
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    fails("OwnershipControlsNotFoundError", 404, s3.get_bucket_ownership_controls,
          Bucket=bucket)


def test_settings_go_with_their_bucket(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket, ACL="public-read")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    fails("NoSuchBucketPolicy", 404, s3.get_bucket_policy, Bucket=bucket)
    assert [g["Permission"] for g in s3.get_bucket_acl(Bucket=bucket)["Grants"]] == [
        "FULL_CONTROL"]
    denied(anonymous(server).list_objects_v2, Bucket=bucket)


def test_every_access_operation_by_each_principal(server, s3):
    """Each operation of access control, and ListObjectVersions, by five principals: the
    root key, a key granted read, write and owner on the bucket, a key granted read, a
    key without rights, and anonymous callers. Allowed means anything but AccessDenied
    (a GetPublicAccessBlock of a bucket without one is NoSuchPublicAccessBlock...)."""
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    principals = each_principal(server, s3, bucket, {
        "owner": ("--read", "--write", "--owner"), "reader": ("--read",)})
    # A policy that admits nobody here: only the principals' own rights count.
    nobody = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "HKNOBODY0000000000X"},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    block = {"BlockPublicAcls": False, "IgnorePublicAcls": False,
             "BlockPublicPolicy": False, "RestrictPublicBuckets": False}
    ownership = {"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}
    b = {"Bucket": bucket}
    reads = {"root", "owner", "reader"}
    owners = {"root", "owner"}
    operations = [
        ("put_bucket_policy", {**b, "Policy": nobody}, owners),
        ("get_bucket_policy", b, owners),
        ("get_bucket_policy_status", b, owners),
        ("delete_bucket_policy", b, owners),
        ("get_bucket_acl", b, reads),
        ("put_bucket_acl", {**b, "ACL": "private"}, owners),
        ("get_object_acl", {**b, "Key": "k"}, reads),
        ("put_object_acl", {**b, "Key": "k", "ACL": "private"}, owners),
        ("put_public_access_block", {**b, "PublicAccessBlockConfiguration": block}, owners),
        ("get_public_access_block", b, owners),
        ("delete_public_access_block", b, owners),
        ("put_bucket_ownership_controls", {**b, "OwnershipControls": ownership}, owners),
        ("get_bucket_ownership_controls", b, owners),
        ("delete_bucket_ownership_controls", b, owners),
        ("list_object_versions", b, reads),
    ]
    assert wrong_decisions(operations, principals) == []
