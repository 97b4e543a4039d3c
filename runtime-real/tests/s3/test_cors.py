"""CORS through boto3 and raw HTTP: Put/Get/DeleteBucketCors and their rules, a browser's
preflight (OPTIONS) answered from the bucket's rules, the Access-Control-* headers on
requests that carry an Origin, and who may configure CORS."""

import http.client
import urllib.parse

import botocore.exceptions
import pytest

from conftest import error_code, status
from test_keys import admin, denied, name, new_key
from test_policies import anonymous, fails

APP = {
    "ID": "app",
    "AllowedOrigins": ["https://*.example.com"],
    "AllowedMethods": ["GET", "PUT", "HEAD"],
    "AllowedHeaders": ["x-amz-*", "Content-Type"],
    "ExposeHeaders": ["ETag", "x-amz-version-id"],
    "MaxAgeSeconds": 600,
}
ANYONE_GETS = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}


def raw(server, method, path, headers=None):
    """One request without a signature; the response's status, headers (lower-case
    names) and body."""
    u = urllib.parse.urlparse(server.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_cors_rules_are_put_read_and_deleted(s3, bucket):
    fails("NoSuchCORSConfiguration", 404, s3.get_bucket_cors, Bucket=bucket)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [APP, ANYONE_GETS]})
    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rules == [APP, ANYONE_GETS]
    s3.delete_bucket_cors(Bucket=bucket)
    fails("NoSuchCORSConfiguration", 404, s3.get_bucket_cors, Bucket=bucket)
    fails("NoSuchBucket", 404, s3.get_bucket_cors, Bucket=name())


def test_cors_configurations_follow_s3_rules(s3, bucket):
    bad_method = {"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}
    fails("InvalidRequest", 400, s3.put_bucket_cors, Bucket=bucket,
          CORSConfiguration={"CORSRules": [bad_method]})
    two_stars = {"AllowedOrigins": ["https://*.*.example.com"], "AllowedMethods": ["GET"]}
    fails("InvalidRequest", 400, s3.put_bucket_cors, Bucket=bucket,
          CORSConfiguration={"CORSRules": [two_stars]})
    fails("MalformedXML", 400, s3.put_bucket_cors, Bucket=bucket,
          CORSConfiguration={"CORSRules": [ANYONE_GETS] * 101})
    fails("NoSuchCORSConfiguration", 404, s3.get_bucket_cors, Bucket=bucket)


def test_a_preflight_is_answered_from_the_first_matching_rule(server, s3, bucket):
    path = f"/{bucket}/photos/cat.jpg"
    asks = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-amz-date, content-type"}
    # No configuration: every preflight is refused.
    code, _, body = raw(server, "OPTIONS", path, asks)
    assert code == 403 and b"CORSResponse" in body, body
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [APP, ANYONE_GETS]})
    code, h, _ = raw(server, "OPTIONS", path, asks)
    assert code == 200
    assert h["access-control-allow-origin"] == "https://app.example.com"
    assert h["access-control-allow-credentials"] == "true"
    assert h["access-control-allow-methods"] == "GET, PUT, HEAD"
    assert h["access-control-allow-headers"] == "x-amz-date, content-type"
    assert h["access-control-max-age"] == "600"
    assert h["access-control-expose-headers"] == "ETag, x-amz-version-id"
    assert "Origin" in h["vary"]
    # A header the rule does not allow, a method no rule allows, an origin no rule
    # names for that method: refused.
    for change in ({"Access-Control-Request-Headers": "authorization"},
                   {"Access-Control-Request-Method": "DELETE"},
                   {"Origin": "https://evil.org", "Access-Control-Request-Method": "PUT"}):
        code, h, body = raw(server, "OPTIONS", path, {**asks, **change})
        assert code == 403 and "access-control-allow-origin" not in h, (change, body)
    # Any other origin may GET, without credentials.
    code, h, _ = raw(server, "OPTIONS", path,
                     {"Origin": "https://elsewhere.org", "Access-Control-Request-Method": "GET"})
    assert code == 200 and h["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in h
    # A preflight without an Origin is a bad request; one to a missing bucket is 404.
    assert raw(server, "OPTIONS", path, {"Access-Control-Request-Method": "GET"})[0] == 400
    assert raw(server, "OPTIONS", f"/{name()}/k", asks)[0] == 404


def test_requests_with_an_origin_get_the_matching_rules_headers(server, s3, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", '
        f'"Action": "s3:GetObject", "Resource": "arn:aws:s3:::{bucket}/*"}}]}}'))
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [APP]})
    code, h, body = raw(server, "GET", f"/{bucket}/k", {"Origin": "https://app.example.com"})
    assert (code, body) == (200, b"v")
    assert h["access-control-allow-origin"] == "https://app.example.com"
    assert h["access-control-expose-headers"] == "ETag, x-amz-version-id"
    assert "access-control-allow-methods" not in h
    # No matching rule, or no Origin: no CORS headers, and the request is served as ever.
    code, h, body = raw(server, "GET", f"/{bucket}/k", {"Origin": "https://evil.org"})
    assert (code, body) == (200, b"v") and "access-control-allow-origin" not in h
    code, h, _ = raw(server, "GET", f"/{bucket}/k")
    assert code == 200 and "access-control-allow-origin" not in h
    # An error answer to a matching origin carries them too (the page can read it).
    code, h, _ = raw(server, "GET", f"/{bucket}/missing", {"Origin": "https://app.example.com"})
    assert code in (403, 404) and h["access-control-allow-origin"] == "https://app.example.com"
    # Deleting the configuration takes them away.
    s3.delete_bucket_cors(Bucket=bucket)
    code, h, _ = raw(server, "GET", f"/{bucket}/k", {"Origin": "https://app.example.com"})
    assert code == 200 and "access-control-allow-origin" not in h


def test_only_owners_configure_cors_and_anyone_may_preflight(server, s3):
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    owner_ak, owner_sk = new_key(server, "cors-owner")
    admin(server, "allow", owner_ak, bucket, "--read", "--write", "--owner")
    writer_ak, writer_sk = new_key(server, "cors-writer")
    admin(server, "allow", writer_ak, bucket, "--read", "--write")
    owner = server.client(owner_ak, owner_sk)
    writer = server.client(writer_ak, writer_sk)
    config = {"CORSRules": [ANYONE_GETS]}
    for who in (writer, anonymous(server)):
        denied(who.put_bucket_cors, Bucket=bucket, CORSConfiguration=config)
        denied(who.get_bucket_cors, Bucket=bucket)
        denied(who.delete_bucket_cors, Bucket=bucket)
    owner.put_bucket_cors(Bucket=bucket, CORSConfiguration=config)
    assert owner.get_bucket_cors(Bucket=bucket)["CORSRules"] == [ANYONE_GETS]
    code, h, _ = raw(server, "OPTIONS", f"/{bucket}/k",
                     {"Origin": "https://x.org", "Access-Control-Request-Method": "GET"})
    assert code == 200 and h["access-control-allow-origin"] == "*"
    owner.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        owner.get_bucket_cors(Bucket=bucket)
    assert (error_code(e), status(e)) == ("NoSuchCORSConfiguration", 404)
