"""S3 as the local AWS's runners use it: s3:// URIs, and staging objects to and from a
local tree (a job's inputs and outputs, a model archive)."""
from __future__ import annotations

from pathlib import Path


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of s3://bucket/key; the key may be a prefix, or empty."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_object(s3, uri: str) -> bytes:
    """The body of the object at `uri`."""
    bucket, key = split_uri(uri)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def list_keys(s3, bucket: str, prefix: str) -> list[str]:
    """Every key under `prefix`, all pages, sorted."""
    return sorted(item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                  for item in page.get("Contents", []))


def download_keys(s3, uri: str, keys: list[str], target: Path) -> None:
    """The objects `keys` under the prefix `uri` into `target`, at their paths below the prefix."""
    bucket, prefix = split_uri(uri)
    target.mkdir(parents=True, exist_ok=True)
    for key in keys:
        relative = key[len(prefix):].lstrip("/") or Path(key).name
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(destination))


def upload_dir(s3, directory: Path, uri: str) -> None:
    """Every file below `directory` to the prefix `uri`, at its relative path."""
    bucket, prefix = split_uri(uri)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(directory).as_posix()}")


def upload_bytes(s3, uri: str, body: bytes) -> None:
    bucket, key = split_uri(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
