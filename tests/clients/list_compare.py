"""Pages through the same listings on two endpoints with boto3 and reports
every difference: the proxy's merged listing of a bucket split across two
stores, against one store holding the union.

usage: list_compare.py CONFIG.json

CONFIG: {"a": {endpoint, key, secret, region}, "b": {...}, "bucket": ...,
         "page_sizes": [...], "prefixes": [...], "delimiters": [...],
         "seed": N, "random_rounds": N}

Prints {"compared": N, "mismatches": [...]} as JSON.
"""

import json
import random
import sys

from urllib.parse import unquote_plus

import boto3
from botocore.config import Config


def client(e):
    return boto3.client(
        "s3",
        endpoint_url=e["endpoint"],
        aws_access_key_id=e["key"],
        aws_secret_access_key=e["secret"],
        region_name=e["region"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def pages(c, bucket, version, size, prefix, delimiter, encode):
    """Every page of one listing, as comparable tuples."""
    out = []
    kw = {"Bucket": bucket, "MaxKeys": size}
    if prefix:
        kw["Prefix"] = prefix
    if delimiter:
        kw["Delimiter"] = delimiter
    if encode:
        kw["EncodingType"] = "url"
    marker = None
    for _ in range(10000):
        args = dict(kw)
        if version == 2:
            if marker:
                args["ContinuationToken"] = marker
            r = c.list_objects_v2(**args)
        else:
            if marker:
                args["Marker"] = marker
            r = c.list_objects(**args)
        # Asked explicitly, boto3 leaves url-encoded names as sent; stores
        # differ in how they write a space (S3: `+`), so compare decoded.
        name = unquote_plus if encode else (lambda n: n)
        keys = [(name(o["Key"]), o["Size"], o["ETag"]) for o in r.get("Contents", [])]
        prefixes = [name(p["Prefix"]) for p in r.get("CommonPrefixes", [])]
        truncated = r.get("IsTruncated", False)
        out.append({"keys": keys, "prefixes": prefixes, "truncated": truncated})
        if not truncated:
            return out
        if version == 2:
            marker = r["NextContinuationToken"]
        else:
            # As S3 documents: NextMarker with a delimiter, else the last key.
            # A marker is a raw key: decode what encoding-type=url encoded.
            marker = r.get("NextMarker") or (r["Contents"][-1]["Key"] if keys else None)
            marker = name(marker) if marker is not None else None
            if marker is None:
                return out + [{"error": "truncated v1 page without a marker"}]
    return out + [{"error": "more than 10000 pages"}]


def flat(pages, dedup):
    prefixes = [x for p in pages for x in p.get("prefixes", [])]
    return {
        "keys": [k for p in pages for k in p.get("keys", [])],
        # Garage 2.5 lists a v1 CommonPrefix again on the pages after the
        # one that ended in it (its NextMarker is the prefix's last key);
        # S3 lists each once.
        "prefixes": list(dict.fromkeys(prefixes)) if dedup else prefixes,
        "errors": [p["error"] for p in pages if "error" in p],
    }


def main():
    cfg = json.load(open(sys.argv[1]))
    a, b = client(cfg["a"]), client(cfg["b"])
    bucket = cfg["bucket"]
    cases = []
    for version in (1, 2):
        for delimiter in cfg["delimiters"]:
            for prefix in cfg["prefixes"]:
                for size in cfg["page_sizes"]:
                    cases.append((version, size, prefix, delimiter, False))
            cases.append((version, 1000, "", delimiter, True))
    rnd = random.Random(cfg["seed"])
    for _ in range(cfg["random_rounds"]):
        cases.append(
            (
                rnd.choice((1, 2)),
                rnd.choice((rnd.randint(1, 5), rnd.randint(1, 50), rnd.randint(1, 1000))),
                rnd.choice(cfg["prefixes"]),
                rnd.choice(cfg["delimiters"]),
                rnd.random() < 0.3,
            )
        )
    mismatches = []
    for case in cases:
        version, size, prefix, delimiter, encode = case
        pa = pages(a, bucket, version, size, prefix, delimiter, encode)
        pb = pages(b, bucket, version, size, prefix, delimiter, encode)
        if version == 1 and delimiter:
            # Page boundaries differ where Garage repeated a prefix: compare
            # the whole listing.
            pa, pb = [flat(pa, False)], [flat(pb, True)]
        if pa != pb:
            first = next(i for i in range(max(len(pa), len(pb))) if i >= len(pa) or i >= len(pb) or pa[i] != pb[i])
            mismatches.append(
                {
                    "case": case,
                    "page": first,
                    "proxy": pa[first] if first < len(pa) else None,
                    "union": pb[first] if first < len(pb) else None,
                }
            )
    print(json.dumps({"compared": len(cases), "mismatches": mismatches[:8], "failed": len(mismatches)}))


if __name__ == "__main__":
    main()
