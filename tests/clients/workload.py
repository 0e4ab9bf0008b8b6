#!/usr/bin/env python3
"""One S3 workload, run by boto3 against an endpoint; prints a JSON summary.

The proxy tests run it once through ferry-proxy and once directly against
the store the bucket's mode routes to, and compare the two summaries. It
covers put/get/head/delete, multipart, listing with pagination, prefix and
delimiter, copy, presigned GET and PUT, and range GET. boto3 (the latest from
PyPI) sends CRC32 trailing checksums with aws-chunked bodies by default,
which is the point: the proxy must decode them.

usage: workload.py ENDPOINT BUCKET ACCESS_KEY SECRET REGION PREFIX
"""
import hashlib
import io
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, bucket, key, secret, region, prefix = sys.argv[1:7]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=key,
    aws_secret_access_key=secret,
    region_name=region,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4"),
)
out = {}
# Presigned URLs are fetched with urllib, trusting what boto3 trusts.
tls = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE"))


def md5(b):
    return hashlib.md5(b).hexdigest()


# put / get / head / range
body = b"hello from the workload " * 100
s3.put_object(Bucket=bucket, Key=f"{prefix}plain.txt", Body=body, ContentType="text/plain",
              Metadata={"owner": "workload"})
got = s3.get_object(Bucket=bucket, Key=f"{prefix}plain.txt")
out["get"] = md5(got["Body"].read())
head = s3.head_object(Bucket=bucket, Key=f"{prefix}plain.txt")
out["head"] = [head["ContentLength"], head["ContentType"], head["Metadata"]]
rng = s3.get_object(Bucket=bucket, Key=f"{prefix}plain.txt", Range="bytes=5-24")
out["range"] = rng["Body"].read().decode()

# odd keys
for k in ["with space", "50%", "a+b", "caf\u00e9", "dir/"]:
    s3.put_object(Bucket=bucket, Key=f"{prefix}odd/{k}", Body=k.encode())
out["odd"] = [s3.get_object(Bucket=bucket, Key=f"{prefix}odd/{k}")["Body"].read().decode()
              for k in ["with space", "50%", "a+b", "caf\u00e9", "dir/"]]

# multipart: 2 parts of 5 MiB + a tail
mp = s3.create_multipart_upload(Bucket=bucket, Key=f"{prefix}big.bin")
parts = []
for n, size in enumerate([5 << 20, 5 << 20, 1234], 1):
    r = s3.upload_part(Bucket=bucket, Key=f"{prefix}big.bin", UploadId=mp["UploadId"], PartNumber=n,
                       Body=bytes([n]) * size)
    parts.append({"PartNumber": n, "ETag": r["ETag"]})
s3.complete_multipart_upload(Bucket=bucket, Key=f"{prefix}big.bin", UploadId=mp["UploadId"],
                             MultipartUpload={"Parts": parts})
big = s3.get_object(Bucket=bucket, Key=f"{prefix}big.bin")
out["multipart"] = [big["ContentLength"], md5(big["Body"].read()), big["ETag"].strip('"').split("-")[-1]]

# multipart as s3transfer makes it (upload_fileobj): boto3 asks for a CRC32
# of every part, sent in an aws-chunked trailer, and a store that keeps
# checksums refuses a part of such an upload without it
body = bytes(range(256)) * (6 << 12)
s3.upload_fileobj(io.BytesIO(body), bucket, f"{prefix}checksummed.bin",
                  Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
got = s3.get_object(Bucket=bucket, Key=f"{prefix}checksummed.bin")
out["multipart_checksummed"] = [got["ContentLength"], md5(got["Body"].read())]

# the object's own content encoding, beside the aws-chunked framing
s3.put_object(Bucket=bucket, Key=f"{prefix}zipped", Body=b"not really gzip", ContentEncoding="gzip")
out["content_encoding"] = s3.head_object(Bucket=bucket, Key=f"{prefix}zipped").get("ContentEncoding")

# listing: pagination, prefix, delimiter
for i in range(7):
    s3.put_object(Bucket=bucket, Key=f"{prefix}list/{i}", Body=b"x")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}list/",
                                                     PaginationConfig={"PageSize": 3})
keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
out["list_paged"] = keys
d = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
out["list_delim"] = [sorted(o["Key"] for o in d.get("Contents", [])),
                     sorted(p["Prefix"] for p in d.get("CommonPrefixes", []))]
v1 = s3.list_objects(Bucket=bucket, Prefix=f"{prefix}list/", MaxKeys=2)
out["list_v1"] = [[o["Key"] for o in v1.get("Contents", [])], v1["IsTruncated"]]

# copy
s3.copy_object(Bucket=bucket, Key=f"{prefix}copy.txt", CopySource={"Bucket": bucket, "Key": f"{prefix}plain.txt"})
out["copy"] = md5(s3.get_object(Bucket=bucket, Key=f"{prefix}copy.txt")["Body"].read())

# presigned GET and PUT
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": f"{prefix}plain.txt"}, ExpiresIn=300)
try:
    out["presigned_get"] = md5(urllib.request.urlopen(url, context=tls).read())
except urllib.error.HTTPError as e:
    sys.exit(f"presigned GET {url}: HTTP {e.code}: {e.read().decode(errors='replace')}")
url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"{prefix}presigned.txt"}, ExpiresIn=300)
req = urllib.request.Request(url, data=b"put through a presigned URL", method="PUT",
                             headers={"Content-Type": ""})
try:
    urllib.request.urlopen(req, context=tls).read()
except urllib.error.HTTPError as e:
    sys.exit(f"presigned PUT: HTTP {e.code}: {e.read().decode(errors='replace')}")
out["presigned_put"] = s3.get_object(Bucket=bucket, Key=f"{prefix}presigned.txt")["Body"].read().decode()

# delete
s3.delete_object(Bucket=bucket, Key=f"{prefix}copy.txt")
try:
    s3.head_object(Bucket=bucket, Key=f"{prefix}copy.txt")
    out["delete"] = "still there"
except s3.exceptions.ClientError as e:
    out["delete"] = e.response["Error"]["Code"]
r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"{prefix}list/0"}, {"Key": f"{prefix}list/1"}]})
out["delete_batch"] = sorted(d["Key"] for d in r.get("Deleted", []))

print(json.dumps(out, sort_keys=True))
