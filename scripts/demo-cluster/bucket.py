"""The demo's artifact bucket on the local S3 server, for scripts/demo.sh.

Usage: python bucket.py BUCKET seed RUNS | empty | digest
  seed    creates the bucket if needed, empties it and uploads the pipeline specs and one model per run,
          the objects the demo databases name
  empty   deletes every object (the disaster)
  digest  prints each object's key and SHA-256, sorted, to compare before and after
"""
import hashlib
import os
import sys

import boto3

bucket, action = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["KFGUARD_TEST_S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")


def keys():
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            yield o["Key"]


if action == "seed":
    runs = int(sys.argv[3])
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    for key in list(keys()):
        s3.delete_object(Bucket=bucket, Key=key)
    for key in ["pipelines/p1", "pipelines/p2"]:
        s3.put_object(Bucket=bucket, Key=key, Body=f"pipeline spec {key}\n".encode(), ContentType="application/yaml")
    # A model for one run in ten: the runs that trained one, as the databases say.
    for i in range(1, runs + 1, 10):
        body = hashlib.sha256(f"model {i}".encode()).digest() * 64
        s3.put_object(Bucket=bucket, Key=f"v2/artifacts/run-{i}/model", Body=body)
elif action == "empty":
    for key in list(keys()):
        s3.delete_object(Bucket=bucket, Key=key)
elif action == "digest":
    for key in sorted(keys()):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        print(key, hashlib.sha256(body).hexdigest())
else:
    raise SystemExit(f"bucket.py: unknown action {action}")
