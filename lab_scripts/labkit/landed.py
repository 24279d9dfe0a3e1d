"""What landed in the lab bucket, read back the way a consumer must read it (gzip-aware)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from processing.records import GZIP_MAGIC, CorruptObject, decode_object


@dataclass
class Landed:
    objects_per_partition: Counter = field(default_factory=Counter)  # "YYYY/MM/DD/HH" -> objects
    records_per_partition: Counter = field(default_factory=Counter)
    transaction_ids: Counter = field(default_factory=Counter)
    unreadable_lines: int = 0
    gzip_objects: int = 0
    corrupt_objects: list[str] = field(default_factory=list)  # keys of objects that are not readable gzip

    @property
    def records(self) -> int:
        return sum(self.records_per_partition.values())


def has_objects(s3, bucket: str, prefix: str) -> bool:
    return s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0) > 0


def objects(s3, bucket: str, prefix: str) -> Iterator[tuple[str, bytes]]:
    """(key, body) of every object under `prefix`, all listing pages, in key order."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"], s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()


def read_landed(s3, bucket: str, prefix: str) -> Landed:
    """Read every object under `prefix` and count records per date partition."""
    landed = Landed()
    for key, body in objects(s3, bucket, prefix):
        partition = "/".join(key[len(prefix):].split("/")[:4])
        landed.gzip_objects += body[:2] == GZIP_MAGIC
        landed.objects_per_partition[partition] += 1
        try:
            lines = decode_object(body)
        except CorruptObject:  # step 02 quarantines it, with what can be salvaged
            landed.corrupt_objects.append(key)
            continue
        landed.records_per_partition[partition] += len(lines)
        for line in lines:
            try:
                landed.transaction_ids[json.loads(line)["transaction_id"]] += 1
            except (ValueError, KeyError, TypeError):
                landed.unreadable_lines += 1
    return landed
