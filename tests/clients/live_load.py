#!/usr/bin/env python3
"""Client load for the live migration (tests/src/live.rs): workers that
keep writing, reading, overwriting, deleting, copying and listing through
the proxy until STOP_FILE appears, each recording every acknowledged write
and delete in a ledger. Each worker owns its keys (its prefix, plus its
share of the source's seed keys), so the bucket's final state is the last
acknowledged operation on each key. A write or delete whose answer was
lost (an error) may or may not have happened: the key is "either" its old
or its new state until a later acknowledged operation settles it.

Workers: boto3 (put, get, overwrite, delete, multipart, copy, list),
awscli (s3api put-object, get-object, delete-object) and rclone
(copyto, cat, deletefile).

usage: live_load.py CONFIG_JSON
CONFIG_JSON: {"endpoint", "bucket", "access_key", "secret", "region",
  "seed": {key: sha256, ...}, "workers": {"boto3": n, "awscli": n, "rclone": n},
  "stop_file", "ledger_file", "seconds_between_ops"}
Writes ledger_file: {"keys": {key: sha256 | null | {"either": [..]}},
  "ops": {"CLIENT OP": count}, "errors": [{"t", "worker", "op", "key", "error"}],
  "false_404": [...], "wrong_content": [...]}
"""
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import boto3.s3.transfer
from botocore.config import Config

cfg = json.load(open(sys.argv[1]))
ENDPOINT, BUCKET = cfg["endpoint"], cfg["bucket"]
PAUSE = cfg.get("seconds_between_ops", 0.0)
MULTIPART = 6 << 20

lock = threading.Lock()
ops = {}
errors, false_404, wrong_content = [], [], []
ledger = {}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def count(kind, op):
    with lock:
        ops[f"{kind} {op}"] = ops.get(f"{kind} {op}", 0) + 1


class Worker:
    """One client's keys and its model of them: key -> sha256, None
    (deleted) or a set of possible states (an unacknowledged change)."""

    def __init__(self, name, seed_keys, rng):
        self.name, self.rng = name, rng
        self.kind = name.split("-")[0]
        self.model = {k: {cfg["seed"][k]} for k in seed_keys}
        self.fresh = 0

    def state(self, key):
        return self.model.get(key, {None})

    def body(self):
        return os.urandom(0 if self.rng.random() < 0.05 else self.rng.randrange(1, 64 << 10))

    def key(self):
        keys = list(self.model)
        if not keys or self.rng.random() < 0.3:
            self.fresh += 1
            return f"live/{self.name}/k{self.fresh:05}"
        return self.rng.choice(keys)

    def error(self, op, key, e):
        with lock:
            errors.append({"t": time.time(), "worker": self.name, "op": op, "key": key,
                           "error": str(e)[:300]})

    def write(self, op, key, new, do):
        """do() raises on failure; the key's state is then uncertain."""
        old = self.state(key)
        try:
            do()
        except Exception as e:  # noqa: BLE001 - every failure is recorded
            self.model[key] = old | {new}
            self.error(op, key, e)
            return
        self.model[key] = {new}
        count(self.kind, op)

    def check_read(self, op, key, got):
        """got: sha256, or None for a 404."""
        states = self.state(key)
        if got in states:
            count(self.kind, op)
        elif got is None:
            false_404.append({"t": time.time(), "worker": self.name, "key": key})
        else:
            wrong_content.append({"t": time.time(), "worker": self.name, "key": key})

    def run(self, stop):
        while not os.path.exists(stop):
            self.step()
            if PAUSE:
                time.sleep(PAUSE)

    def result(self):
        out = {}
        for k, states in self.model.items():
            out[k] = next(iter(states)) if len(states) == 1 else {"either": sorted(states, key=str)}
        return out


class Boto3(Worker):
    def __init__(self, *a):
        super().__init__(*a)
        self.s3 = boto3.client(
            "s3", endpoint_url=ENDPOINT, aws_access_key_id=cfg["access_key"],
            aws_secret_access_key=cfg["secret"], region_name=cfg["region"],
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3},
                          connect_timeout=5, read_timeout=30,
                          # moto answers some GETs with a stale checksum
                          # header; the ledger compares content itself.
                          response_checksum_validation="when_required"),
            verify=cfg.get("ca_bundle"))
        self.transfer = boto3.s3.transfer.TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
        self.puts = 0

    def step(self):
        op = self.rng.choices(["put", "get", "delete", "copy", "list"], [5, 5, 2, 1, 1])[0]
        key = self.key()
        if op == "put":
            # The first and every 40th: multipart (a part of 5 MiB and a tail).
            body = os.urandom(MULTIPART + 1234) if self.puts % 40 == 0 else self.body()
            self.puts += 1
            if len(body) >= MULTIPART:
                self.write("multipart", key, sha(body), lambda: self.s3.upload_fileobj(
                    io.BytesIO(body), BUCKET, key, Config=self.transfer))
            else:
                self.write("put", key, sha(body), lambda: self.s3.put_object(Bucket=BUCKET, Key=key, Body=body))
        elif op == "delete":
            self.write("delete", key, None, lambda: self.s3.delete_object(Bucket=BUCKET, Key=key))
        elif op == "copy":
            src = self.key()
            states = self.state(src)
            if len(states) != 1 or None in states:
                return
            self.write("copy", key, next(iter(states)), lambda: self.s3.copy_object(
                Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": src}))
        elif op == "get":
            try:
                got = sha(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            except self.s3.exceptions.NoSuchKey:
                got = None
            except Exception as e:  # noqa: BLE001
                self.error("get", key, e)
                return
            self.check_read("get", key, got)
        elif op == "list":
            prefix = f"live/{self.name}/"
            try:
                listed = set()
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
                    listed.update(o["Key"] for o in page.get("Contents", []))
            except Exception as e:  # noqa: BLE001
                self.error("list", prefix, e)
                return
            for k, states in self.model.items():
                if k.startswith(prefix) and len(states) == 1:
                    if (next(iter(states)) is not None) != (k in listed):
                        wrong_content.append({"t": time.time(), "worker": self.name, "key": k, "op": "list"})
            count(self.kind, "list")


class Cli(Worker):
    """awscli or rclone: one process per operation, as an operator's
    script would run them."""

    def __init__(self, tool, *a):
        super().__init__(*a)
        self.tool = tool
        self.tmp = tempfile.mkdtemp()
        if tool == "awscli":
            self.env = dict(os.environ, AWS_ACCESS_KEY_ID=cfg["access_key"], AWS_SECRET_ACCESS_KEY=cfg["secret"],
                            AWS_DEFAULT_REGION=cfg["region"], AWS_MAX_ATTEMPTS="3", AWS_CA_BUNDLE=cfg["ca_bundle"])
        else:
            # rclone's S3 backend would take AWS_CA_BUNDLE too, and refuses it
            # beside its own --ca-cert.
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            conf = os.path.join(self.tmp, "rclone.conf")
            open(conf, "w").close()
            self.env = dict(env, RCLONE_CONFIG=conf, RCLONE_CONFIG_LIVE_TYPE="s3", RCLONE_CONFIG_LIVE_PROVIDER="Other",
                            RCLONE_CONFIG_LIVE_ENDPOINT=ENDPOINT, RCLONE_CONFIG_LIVE_ACCESS_KEY_ID=cfg["access_key"],
                            RCLONE_CONFIG_LIVE_SECRET_ACCESS_KEY=cfg["secret"], RCLONE_CONFIG_LIVE_REGION=cfg["region"],
                            RCLONE_CONFIG_LIVE_FORCE_PATH_STYLE="true", RCLONE_CONFIG_LIVE_NO_CHECK_BUCKET="true")

    def cmd(self, *args):
        if self.tool == "awscli":
            return ["aws", "--endpoint-url", ENDPOINT, "s3api", *args]
        return ["rclone", "--retries", "3", "--low-level-retries", "3", "--ca-cert", cfg["ca_bundle"], *args]

    def call(self, argv):
        p = subprocess.run(argv, env=self.env, capture_output=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"{argv[0]} exit {p.returncode}: {p.stderr.decode(errors='replace')[-300:]}")
        return p

    def step(self):
        op = self.rng.choices(["put", "get", "delete"], [5, 4, 2])[0]
        key = self.key()
        path = os.path.join(self.tmp, "obj")
        remote = f"live:{BUCKET}/{key}"
        if op == "put":
            body = os.urandom(self.rng.randrange(0, 32 << 10))
            open(path, "wb").write(body)
            argv = (self.cmd("put-object", "--bucket", BUCKET, "--key", key, "--body", path)
                    if self.tool == "awscli" else self.cmd("copyto", path, remote))
            self.write("put", key, sha(body), lambda: self.call(argv))
        elif op == "delete":
            argv = (self.cmd("delete-object", "--bucket", BUCKET, "--key", key)
                    if self.tool == "awscli" else self.cmd("deletefile", remote))
            if self.tool == "rclone" and None in self.state(key):
                return  # rclone deletefile refuses a missing file
            self.write("delete", key, None, lambda: self.call(argv))
        else:
            # rclone cat (and copyto) take a missing object for an empty
            # folder and succeed: copyto into a fresh file, with exit 9
            # when nothing came, tells absent from empty.
            if os.path.exists(path):
                os.remove(path)
            argv = (self.cmd("get-object", "--bucket", BUCKET, "--key", key, path)
                    if self.tool == "awscli" else self.cmd("copyto", "--error-on-no-transfer", remote, path))
            p = subprocess.run(argv, env=self.env, capture_output=True, timeout=120)
            err = p.stderr.decode(errors="replace")
            if p.returncode == 0:
                got = sha(open(path, "rb").read())
            elif "NoSuchKey" in err or (self.tool == "rclone" and p.returncode == 9):
                got = None
            else:
                self.error("get", key, err[-300:])
                return
            self.check_read("get", key, got)


def main():
    seed = sorted(cfg["seed"])
    kinds = [k for k, n in cfg["workers"].items() for _ in range(n)]
    workers = []
    for i, kind in enumerate(kinds):
        mine = seed[i::len(kinds)][: cfg.get("seed_keys_per_worker", 50)]
        rng = random.Random(i)
        name = f"{kind}-{i}"
        workers.append(Boto3(name, mine, rng) if kind == "boto3" else Cli(kind, name, mine, rng))
    threads = [threading.Thread(target=w.run, args=(cfg["stop_file"],)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = {}
    for w in workers:
        keys.update(w.result())
    tmp = cfg["ledger_file"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"keys": keys, "ops": ops, "errors": errors, "false_404": false_404,
                   "wrong_content": wrong_content}, f)
    os.rename(tmp, cfg["ledger_file"])


main()
