"""An object by its parts through boto3: GET and HEAD with PartNumber (a multipart
object's part as a 206 with x-amz-mp-parts-count; a simple object's one part),
GetObjectAttributes (ETag, checksum, size, storage class, paged parts), and
ListMultipartUploads with a delimiter (common prefixes, paged)."""

from test_policies import fails

MIB = 1 << 20


def multipart(s3, bucket, key, sizes, **kw):
    """A completed multipart object whose parts have `sizes`; returns its bytes."""
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]
    parts, data = [], b""
    for n, size in enumerate(sizes, start=1):
        body = bytes([n]) * size
        out = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=body,
                             **({"ChecksumAlgorithm": "CRC32"} if kw else {}))
        part = {"PartNumber": n, "ETag": out["ETag"]}
        if "ChecksumCRC32" in out:
            part["ChecksumCRC32"] = out["ChecksumCRC32"]
        parts.append(part)
        data += body
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                 MultipartUpload={"Parts": parts})
    return data


def test_get_and_head_by_part_number(s3, bucket):
    data = multipart(s3, bucket, "mp", [5 * MIB, 3])
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["PartsCount"] == 2 and got["ContentLength"] == 3
    assert got["ContentRange"] == f"bytes {5 * MIB}-{5 * MIB + 2}/{len(data)}"
    assert got["Body"].read() == data[5 * MIB:]
    first = s3.get_object(Bucket=bucket, Key="mp", PartNumber=1)
    assert first["Body"].read() == data[:5 * MIB]
    head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=1)
    assert (head["ContentLength"], head["PartsCount"]) == (5 * MIB, 2)
    assert head["ContentRange"] == f"bytes 0-{5 * MIB - 1}/{len(data)}"
    fails("InvalidPartNumber", 416, s3.get_object, Bucket=bucket, Key="mp", PartNumber=3)
    fails("InvalidArgument", 400, s3.get_object, Bucket=bucket, Key="mp", PartNumber=0)
    fails("InvalidRequest", 400, s3.get_object, Bucket=bucket, Key="mp", PartNumber=1,
          Range="bytes=0-1")

    # A simple object is its one part.
    s3.put_object(Bucket=bucket, Key="simple", Body=b"whole")
    got = s3.get_object(Bucket=bucket, Key="simple", PartNumber=1)
    assert got["Body"].read() == b"whole" and "PartsCount" not in got
    fails("InvalidPartNumber", 416, s3.get_object, Bucket=bucket, Key="simple", PartNumber=2)


def test_get_object_attributes(s3, bucket):
    s3.put_object(Bucket=bucket, Key="simple", Body=b"abc", ChecksumAlgorithm="SHA256")
    a = s3.get_object_attributes(Bucket=bucket, Key="simple", ObjectAttributes=[
        "ETag", "Checksum", "ObjectSize", "StorageClass", "ObjectParts"])
    # S3 sends this ETag without quotes; s3s always quotes one.
    assert a["ETag"].strip('"') == "900150983cd24fb0d6963f7d28e17f72"
    assert a["ObjectSize"] == 3 and a["StorageClass"] == "STANDARD"
    assert a["Checksum"]["ChecksumSHA256"] == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    assert "ObjectParts" not in a
    only = s3.get_object_attributes(Bucket=bucket, Key="simple", ObjectAttributes=["ObjectSize"])
    assert "ETag" not in only and only["ObjectSize"] == 3

    multipart(s3, bucket, "mp", [5 * MIB, 5 * MIB, 7], ChecksumAlgorithm="CRC32")
    a = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                 MaxParts=2)
    parts = a["ObjectParts"]
    assert parts["TotalPartsCount"] == 3 and parts["IsTruncated"]
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, 5 * MIB), (2, 5 * MIB)]
    assert all("ChecksumCRC32" in p for p in parts["Parts"])
    rest = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                    PartNumberMarker=parts["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in rest["ObjectParts"]["Parts"]] == [3]
    assert not rest["ObjectParts"]["IsTruncated"]

    fails("InvalidArgument", 400, s3.get_object_attributes, Bucket=bucket, Key="simple",
          ObjectAttributes=["Colour"])
    fails("NoSuchKey", 404, s3.get_object_attributes, Bucket=bucket, Key="absent",
          ObjectAttributes=["ETag"])


def test_list_multipart_uploads_with_a_delimiter(s3, bucket):
    keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d"]
    ids = {k: s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys}
    page = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in page["Uploads"]] == ["b", "d"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "c/"]
    inner = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/", Prefix="c/")
    assert [u["Key"] for u in inner["Uploads"]] == ["c/y"]
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["c/x/"]

    # Paged one entry at a time, a common prefix counts as one and is not repeated.
    seen, markers = [], {}
    for _ in range(10):
        page = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/", MaxUploads=1, **markers)
        seen += [u["Key"] for u in page.get("Uploads", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextUploadIdMarker"):
            markers["UploadIdMarker"] = page["NextUploadIdMarker"]
    assert seen == ["a/", "b", "c/", "d"]
    for k, upload_id in ids.items():
        s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=upload_id)
