"""Server-side encryption through boto3: SSE-S3 (a master key from a file) and SSE-C
(the customer's key on every request, over TLS), bucket default encryption, ranges,
copies and multipart uploads of encrypted objects, every refusal, and the shards on disk
holding ciphertext only."""

import base64
import hashlib
import os
import tempfile
import uuid

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import ACCESS_KEY, SECRET_KEY, Server, error_code, status
from test_operate import make_certificates

MARKER = b"hamster-plaintext-marker:"
MIB = 1 << 20


def fails(code, http_status, call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    assert (error_code(e), status(e)) == (code, http_status), e.value.response


def body(n):
    """`n` bytes of the marker again and again: easy to find on a disk."""
    return (MARKER * (n // len(MARKER) + 1))[:n]


def write_key(path, raw):
    with open(path, "w") as f:
        f.write(base64.b64encode(raw).decode() + "\n")


class Sealed:
    """A TLS `hamster server` with an SSE-S3 master key file, restartable with another."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.ca, cert, key = make_certificates(tmp)
        self.key_file = os.path.join(tmp, "master.key")
        write_key(self.key_file, os.urandom(32))
        self.server = Server(os.path.join(tmp, "data"),
                             ["--tls-cert", cert, "--tls-key", key,
                              "--sse-master-key-file", self.key_file])
        self.server.endpoint = f"https://127.0.0.1:{self.server.port}"

    def client(self):
        cfg = botocore.config.Config(s3={"addressing_style": "path"},
                                     retries={"max_attempts": 1})
        return boto3.client("s3", endpoint_url=self.server.endpoint, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=cfg, verify=self.ca)

    def shards(self):
        """Every shard file's bytes."""
        found = []
        for dirpath, _, files in os.walk(os.path.join(self.server.data_dir, "shards")):
            for f in files:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    found.append(fh.read())
        return found


@pytest.fixture(scope="module")
def sealed():
    with tempfile.TemporaryDirectory(prefix="hamster-sse-") as tmp:
        s = Sealed(tmp)
        s.server.start()
        try:
            yield s
        finally:
            s.server.stop()


@pytest.fixture
def s3e(sealed):
    return sealed.client()


@pytest.fixture
def ebucket(s3e):
    name = "e-" + uuid.uuid4().hex[:16]
    s3e.create_bucket(Bucket=name)
    return name


def customer(raw=None):
    raw = raw or os.urandom(32)
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": raw}


def copy_customer(raw):
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": raw}


def test_sse_s3_objects_read_back_whole_and_in_ranges_and_disks_hold_ciphertext(sealed, s3e,
                                                                              ebucket):
    sizes = {"empty": 0, "tiny": 10, "block": 65536, "odd": 300_001, "big": 3 * MIB + 17}
    for key, n in sizes.items():
        out = s3e.put_object(Bucket=ebucket, Key=key, Body=body(n), ServerSideEncryption="AES256")
        assert out["ServerSideEncryption"] == "AES256"
        assert out["ETag"] == '"%s"' % hashlib.md5(body(n)).hexdigest()
    for key, n in sizes.items():
        got = s3e.get_object(Bucket=ebucket, Key=key)
        assert got["ServerSideEncryption"] == "AES256"
        assert got["ContentLength"] == n
        assert got["Body"].read() == body(n), key
        assert s3e.head_object(Bucket=ebucket, Key=key)["ServerSideEncryption"] == "AES256"
    big = body(sizes["big"])
    for r, (a, b) in {"bytes=65530-65545": (65530, 65546), "bytes=0-0": (0, 1),
                      "bytes=-10": (len(big) - 10, len(big)),
                      "bytes=1048570-2097160": (1048570, 2097161),
                      "bytes=3000000-": (3000000, len(big))}.items():
        got = s3e.get_object(Bucket=ebucket, Key="big", Range=r)
        assert got["Body"].read() == big[a:b], r
        assert got["ContentRange"] == f"bytes {a}-{b - 1}/{len(big)}"
    # Not one shard holds the marker; a plain object's shards do (the scan can see it).
    assert not [s for s in sealed.shards() if MARKER in s]
    s3e.put_object(Bucket=ebucket, Key="plain", Body=body(100_000))
    assert "ServerSideEncryption" not in s3e.head_object(Bucket=ebucket, Key="plain")
    assert [s for s in sealed.shards() if MARKER in s]
    s3e.delete_object(Bucket=ebucket, Key="plain")


def test_the_master_key_opens_objects_after_a_restart_and_another_key_does_not(sealed, s3e,
                                                                              ebucket):
    s3e.put_object(Bucket=ebucket, Key="kept", Body=body(70_000), ServerSideEncryption="AES256")
    sealed.server.stop()
    sealed.server.start()
    client = sealed.client()
    assert client.get_object(Bucket=ebucket, Key="kept")["Body"].read() == body(70_000)
    original = open(sealed.key_file).read()
    write_key(sealed.key_file, os.urandom(32))
    sealed.server.stop()
    sealed.server.start()
    try:
        fails("InternalError", 500, sealed.client().get_object, Bucket=ebucket, Key="kept")
        # A HEAD decrypts nothing, so it still answers.
        head = sealed.client().head_object(Bucket=ebucket, Key="kept")
        assert head["ServerSideEncryption"] == "AES256"
    finally:
        with open(sealed.key_file, "w") as f:
            f.write(original)
        sealed.server.stop()
        sealed.server.start()
    assert sealed.client().get_object(Bucket=ebucket, Key="kept")["Body"].read() == body(70_000)


def test_bucket_default_encryption(s3e, ebucket):
    fails("ServerSideEncryptionConfigurationNotFoundError", 404,
          s3e.get_bucket_encryption, Bucket=ebucket)
    s3e.put_object(Bucket=ebucket, Key="before", Body=b"plain")
    s3e.put_bucket_encryption(Bucket=ebucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BucketKeyEnabled": True}]})
    rule = s3e.get_bucket_encryption(Bucket=ebucket)[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert rule["BucketKeyEnabled"] is True
    out = s3e.put_object(Bucket=ebucket, Key="after", Body=b"sealed by default")
    assert out["ServerSideEncryption"] == "AES256"
    assert s3e.get_object(Bucket=ebucket, Key="after")["Body"].read() == b"sealed by default"
    assert "ServerSideEncryption" not in s3e.head_object(Bucket=ebucket, Key="before")
    up = s3e.create_multipart_upload(Bucket=ebucket, Key="mp")
    assert up["ServerSideEncryption"] == "AES256"
    s3e.abort_multipart_upload(Bucket=ebucket, Key="mp", UploadId=up["UploadId"])
    # SSE-C on a bucket with a default: the customer's key wins.
    key = os.urandom(32)
    s3e.put_object(Bucket=ebucket, Key="c", Body=b"c", **customer(key))
    assert "ServerSideEncryption" not in s3e.head_object(Bucket=ebucket, Key="c", **customer(key))
    s3e.delete_bucket_encryption(Bucket=ebucket)
    fails("ServerSideEncryptionConfigurationNotFoundError", 404,
          s3e.get_bucket_encryption, Bucket=ebucket)
    assert "ServerSideEncryption" not in s3e.put_object(Bucket=ebucket, Key="later", Body=b"x")
    fails("NotImplemented", 501, s3e.put_bucket_encryption, Bucket=ebucket,
          ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {
              "SSEAlgorithm": "aws:kms"}}]})
    fails("NotImplemented", 501, s3e.put_object, Bucket=ebucket, Key="k", Body=b"k",
          ServerSideEncryption="aws:kms")


def test_sse_c_needs_the_same_key_for_every_read(s3e, ebucket):
    key, other = os.urandom(32), os.urandom(32)
    data = body(200_000)
    out = s3e.put_object(Bucket=ebucket, Key="c", Body=data, **customer(key))
    md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    assert (out["SSECustomerAlgorithm"], out["SSECustomerKeyMD5"]) == ("AES256", md5)
    got = s3e.get_object(Bucket=ebucket, Key="c", **customer(key))
    assert got["Body"].read() == data
    assert (got["SSECustomerAlgorithm"], got["SSECustomerKeyMD5"]) == ("AES256", md5)
    assert "ServerSideEncryption" not in got
    part = s3e.get_object(Bucket=ebucket, Key="c", Range="bytes=65000-70000", **customer(key))
    assert part["Body"].read() == data[65000:70001]
    assert s3e.head_object(Bucket=ebucket, Key="c", **customer(key))["ContentLength"] == len(data)
    fails("InvalidRequest", 400, s3e.get_object, Bucket=ebucket, Key="c")
    fails("400", 400, s3e.head_object, Bucket=ebucket, Key="c")
    fails("InvalidRequest", 400, s3e.get_object_attributes, Bucket=ebucket, Key="c",
          ObjectAttributes=["ObjectSize"])
    # boto3 encodes the key itself only for GET, PUT, HEAD, copies and parts.
    encoded = {"SSECustomerAlgorithm": "AES256", "SSECustomerKeyMD5": md5,
               "SSECustomerKey": base64.b64encode(key).decode()}
    assert s3e.get_object_attributes(Bucket=ebucket, Key="c", ObjectAttributes=["ObjectSize"],
                                     **encoded)["ObjectSize"] == len(data)
    fails("AccessDenied", 403, s3e.get_object, Bucket=ebucket, Key="c", **customer(other))
    # A key for an object that has none, a wrong MD5, a short key, another algorithm.
    s3e.put_object(Bucket=ebucket, Key="plain", Body=b"p")
    fails("InvalidRequest", 400, s3e.get_object, Bucket=ebucket, Key="plain", **customer(key))
    fails("InvalidArgument", 400, s3e.put_object, Bucket=ebucket, Key="x", Body=b"x",
          SSECustomerAlgorithm="AES256", SSECustomerKey=base64.b64encode(key).decode(),
          SSECustomerKeyMD5=base64.b64encode(hashlib.md5(other).digest()).decode())
    fails("InvalidArgument", 400, s3e.put_object, Bucket=ebucket, Key="x", Body=b"x",
          **customer(os.urandom(16)))
    fails("InvalidArgument", 400, s3e.put_object, Bucket=ebucket, Key="x", Body=b"x",
          SSECustomerAlgorithm="AES128", SSECustomerKey=key)
    fails("InvalidArgument", 400, s3e.put_object, Bucket=ebucket, Key="x", Body=b"x",
          ServerSideEncryption="AES256", **customer(key))
    # Copies: the source's key to read it, the copy's own encryption to write it.
    fails("InvalidRequest", 400, s3e.copy_object, Bucket=ebucket, Key="d",
          CopySource={"Bucket": ebucket, "Key": "c"})
    out = s3e.copy_object(Bucket=ebucket, Key="d", CopySource={"Bucket": ebucket, "Key": "c"},
                          ServerSideEncryption="AES256", **copy_customer(key))
    assert out["ServerSideEncryption"] == "AES256"
    assert s3e.get_object(Bucket=ebucket, Key="d")["Body"].read() == data
    s3e.copy_object(Bucket=ebucket, Key="e", CopySource={"Bucket": ebucket, "Key": "d"},
                    **customer(other))
    assert s3e.get_object(Bucket=ebucket, Key="e", **customer(other))["Body"].read() == data
    # A copy onto itself may change only its encryption (here: to none).
    s3e.copy_object(Bucket=ebucket, Key="c", CopySource={"Bucket": ebucket, "Key": "c"},
                    ServerSideEncryption="AES256", **copy_customer(key))
    assert s3e.get_object(Bucket=ebucket, Key="c")["ServerSideEncryption"] == "AES256"


def test_encrypted_multipart_uploads(s3e, ebucket):
    p1, p2 = os.urandom(5 * MIB), body(MIB + 3)
    up = s3e.create_multipart_upload(Bucket=ebucket, Key="m", ServerSideEncryption="AES256")
    assert up["ServerSideEncryption"] == "AES256"
    etags = [s3e.upload_part(Bucket=ebucket, Key="m", UploadId=up["UploadId"], PartNumber=n,
                             Body=b)["ETag"] for n, b in ((1, p1), (2, p2))]
    done = s3e.complete_multipart_upload(
        Bucket=ebucket, Key="m", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]})
    assert done["ServerSideEncryption"] == "AES256"
    whole = p1 + p2
    assert s3e.get_object(Bucket=ebucket, Key="m")["Body"].read() == whole
    r = s3e.get_object(Bucket=ebucket, Key="m", Range=f"bytes={5 * MIB - 10}-{5 * MIB + 9}")
    assert r["Body"].read() == whole[5 * MIB - 10:5 * MIB + 10]
    assert s3e.get_object(Bucket=ebucket, Key="m", PartNumber=2)["Body"].read() == p2

    key = os.urandom(32)
    up = s3e.create_multipart_upload(Bucket=ebucket, Key="mc", **customer(key))["UploadId"]
    fails("InvalidRequest", 400, s3e.upload_part, Bucket=ebucket, Key="mc", UploadId=up,
          PartNumber=1, Body=p1)
    fails("AccessDenied", 403, s3e.upload_part, Bucket=ebucket, Key="mc", UploadId=up,
          PartNumber=1, Body=p1, **customer(os.urandom(32)))
    e1 = s3e.upload_part(Bucket=ebucket, Key="mc", UploadId=up, PartNumber=1, Body=p1,
                         **customer(key))["ETag"]
    # The second part is copied from the SSE-S3 object's second part.
    e2 = s3e.upload_part_copy(Bucket=ebucket, Key="mc", UploadId=up, PartNumber=2,
                              CopySource={"Bucket": ebucket, "Key": "m"},
                              CopySourceRange=f"bytes={5 * MIB}-{len(whole) - 1}",
                              **customer(key))["CopyPartResult"]["ETag"]
    s3e.complete_multipart_upload(Bucket=ebucket, Key="mc", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert s3e.get_object(Bucket=ebucket, Key="mc", **customer(key))["Body"].read() == whole
    fails("InvalidRequest", 400, s3e.get_object, Bucket=ebucket, Key="mc")


def test_sse_is_refused_without_a_master_key_or_without_tls(s3, bucket):
    # The shared server has no master key, and serves plain HTTP.
    fails("InvalidRequest", 400, s3.put_object, Bucket=bucket, Key="k", Body=b"k",
          ServerSideEncryption="AES256")
    fails("InvalidRequest", 400, s3.put_bucket_encryption, Bucket=bucket,
          ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {
              "SSEAlgorithm": "AES256"}}]})
    fails("InvalidRequest", 400, s3.put_object, Bucket=bucket, Key="k", Body=b"k",
          **customer())
    fails("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="k")
