"""Batch transform as SageMaker runs it, through the model's real serving container.

moto records CreateTransformJob and calls it Completed without scoring anything. Here the
job starts the model's container (runtime/container.py: the image's serving stack, as for
an endpoint) and feeds it the input objects with SageMaker's semantics, as the developer
guide's "Batch transform" and "Associate prediction results with input records" pages
describe them:
- SplitType Line: each object is split into records at line breaks (None: one record);
- BatchStrategy MultiRecord: as many records per request as fit in MaxPayloadInMB
  (SingleRecord: one per request); a single record over the limit fails the job;
- DataProcessing: InputFilter selects what the model sees, JoinSource Input appends each
  prediction to its whole input record, OutputFilter selects what is written; the filters
  are JSONPath over a CSV record's fields ("$[1:]", "$[0,-1]");
- TransformOutput: <S3OutputPath>/<input object's name>.out, records joined by a line
  break (AssembleWith Line), encrypted with KmsKeyId.
A request the container answers with an error fails the job with its status and message,
as on SageMaker. CSV only: the kit's content type; others are refused up front.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

MB = 1024 * 1024
_INDEX = re.compile(r"^-?\d+$")
_SLICE = re.compile(r"^(-?\d*):(-?\d*)$")


class TransformError(Exception):
    """The job fails with this message (a ClientError on SageMaker)."""


def json_path(expression: str) -> Callable[[list[str]], list[str]]:
    """A CSV record's fields selected by the JSONPath subset batch transform uses: "$" (all),
    "$[i]", "$[i,j,...]", "$[a:b]" and combinations, negative indices from the end."""
    expression = (expression or "$").replace(" ", "")
    if expression == "$":
        return lambda fields: fields
    match = re.fullmatch(r"\$\[(.+)\]", expression)
    if not match:
        raise TransformError(f"JSONPath {expression!r} is not supported: use $, $[i], $[i,j] or $[a:b]")
    parts = []
    for part in match.group(1).split(","):
        if _INDEX.match(part):
            parts.append(int(part))
        elif sliced := _SLICE.match(part):
            parts.append(slice(int(sliced.group(1)) if sliced.group(1) else None, int(sliced.group(2)) if sliced.group(2) else None))
        else:
            raise TransformError(f"JSONPath {expression!r}: {part!r} is neither an index nor a slice")

    def select(fields: list[str]) -> list[str]:
        chosen: list[str] = []
        for part in parts:
            if isinstance(part, slice):
                chosen.extend(fields[part])
            else:
                if not -len(fields) <= part < len(fields):
                    raise TransformError(f"JSONPath {expression!r}: index {part} is outside a record of {len(fields)} fields")
                chosen.append(fields[part])
        return chosen

    return select


@dataclass(frozen=True)
class Settings:
    """What of a CreateTransformJob request shapes the records and requests."""

    content_type: str
    accept: str
    split_lines: bool
    multi_record: bool
    max_payload_bytes: int
    input_filter: Callable[[list[str]], list[str]]
    join_input: bool
    output_filter: Callable[[list[str]], list[str]]

    @classmethod
    def from_request(cls, request: dict) -> Settings:
        source, output = request["TransformInput"], request["TransformOutput"]
        processing = request.get("DataProcessing", {})
        content_type = source.get("ContentType", "text/csv")
        accept = output.get("Accept", content_type)
        if content_type != "text/csv" or accept != "text/csv":
            raise TransformError(f"the local AWS runs CSV batch transforms only (ContentType and Accept text/csv), not {content_type} -> {accept}")
        if source.get("CompressionType", "None") != "None":
            raise TransformError("CompressionType Gzip is not supported offline: send plain CSV")
        if source.get("SplitType", "None") not in ("None", "Line"):
            raise TransformError(f"SplitType {source['SplitType']} is not supported for CSV: use Line")
        return cls(
            content_type=content_type,
            accept=accept,
            split_lines=source.get("SplitType", "None") == "Line",
            multi_record=request.get("BatchStrategy", "MultiRecord") == "MultiRecord",
            max_payload_bytes=int(request.get("MaxPayloadInMB", 6)) * MB,
            input_filter=json_path(processing.get("InputFilter", "$")),
            join_input=processing.get("JoinSource", "None") == "Input",
            output_filter=json_path(processing.get("OutputFilter", "$")),
        )


def records_of(body: bytes, settings: Settings) -> list[str]:
    """The object's records: its lines (blank ones skipped), or the whole object."""
    text = body.decode("utf-8")
    if not settings.split_lines:
        return [text.rstrip("\n")] if text.strip() else []
    return [line for line in text.splitlines() if line.strip()]


def batches(records: list[str], settings: Settings) -> list[list[int]]:
    """Record positions grouped into requests: MultiRecord packs records (joined by line
    breaks) up to MaxPayloadInMB; SingleRecord sends one each."""
    groups: list[list[int]] = []
    size = 0
    for index, record in enumerate(records):
        length = len(record.encode()) + 1
        if length > settings.max_payload_bytes:
            raise TransformError(f"record {index + 1} is {length} bytes, more than MaxPayloadInMB ({settings.max_payload_bytes // MB} MB)")
        if groups and settings.multi_record and size + length <= settings.max_payload_bytes:
            groups[-1].append(index)
            size += length
        else:
            groups.append([index])
            size = length
    return groups


def transform_object(body: bytes, settings: Settings, invoke: Callable[[bytes], tuple[int, bytes]]) -> bytes:
    """One input object through the container: the .out object's bytes. `invoke` sends a
    request body to /invocations and returns (status, reply body)."""
    records = records_of(body, settings)
    model_input = [",".join(settings.input_filter(record.split(","))) for record in records]
    predictions: list[str] = []
    for group in batches(model_input, settings):
        status, reply = invoke("\n".join(model_input[i] for i in group).encode())
        if status != 200:
            raise TransformError(f"the model answered {status} for records {group[0] + 1}-{group[-1] + 1}: {reply[:300].decode(errors='replace')}")
        lines = [line for line in reply.decode().splitlines() if line.strip()]
        if len(lines) != len(group):
            raise TransformError(f"the model returned {len(lines)} predictions for {len(group)} records (records {group[0] + 1}-{group[-1] + 1})")
        predictions.extend(lines)
    out = []
    for record, prediction in zip(records, predictions):
        joined = f"{record},{prediction}" if settings.join_input else prediction
        out.append(",".join(settings.output_filter(joined.split(","))))
    return ("\n".join(out) + "\n").encode() if out else b""
