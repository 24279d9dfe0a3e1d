"""Batch transform semantics the local AWS applies (SageMaker's, for CSV): records, batches,
input and output filters, the join with the input. The whole job through the real serving
container is in test_readme_by_hand.py (its scores equal the endpoint's)."""
from __future__ import annotations

import pytest

from localaws.sagemaker.transform import MB, Settings, TransformError, batches, json_path, records_of, transform_object


def request(**overrides) -> dict:
    base = {
        "TransformInput": {"ContentType": "text/csv", "SplitType": "Line", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/in/"}}},
        "TransformOutput": {"S3OutputPath": "s3://b/out/", "Accept": "text/csv"},
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-2]"},
    }
    return {**base, **overrides}


@pytest.mark.parametrize("expression, expected", [
    ("$", ["a", "b", "c", "d"]),
    ("$[0]", ["a"]),
    ("$[1:]", ["b", "c", "d"]),
    ("$[0,-1]", ["a", "d"]),
    ("$[0, -2]", ["a", "c"]),
    ("$[:2,3]", ["a", "b", "d"]),
])
def test_json_path_selects_csv_fields_as_batch_transform_does(expression, expected):
    assert json_path(expression)(["a", "b", "c", "d"]) == expected


@pytest.mark.parametrize("expression", ["$.features", "$[x]", "[0]"])
def test_unsupported_json_path_is_a_clear_error(expression):
    with pytest.raises(TransformError, match="JSONPath"):
        json_path(expression)


def test_multi_record_packs_requests_up_to_max_payload_and_single_record_sends_one_each():
    records = ["x" * (300 * 1024)] * 7  # 300 KiB each: three fit in 1 MB
    assert batches(records, Settings.from_request(request())) == [[0, 1, 2], [3, 4, 5], [6]]
    assert batches(records, Settings.from_request(request(BatchStrategy="SingleRecord"))) == [[i] for i in range(7)]
    with pytest.raises(TransformError, match="MaxPayloadInMB"):
        batches(["x" * (2 * MB)], Settings.from_request(request()))


def test_lines_are_records_blank_ones_skipped_and_split_none_keeps_the_object_whole():
    body = b"1,2\n\n3,4\n"
    assert records_of(body, Settings.from_request(request())) == ["1,2", "3,4"]
    whole = request(TransformInput={**request()["TransformInput"], "SplitType": "None"})
    assert records_of(body, Settings.from_request(whole)) == ["1,2\n\n3,4"]


def test_the_model_sees_the_filtered_input_and_the_output_joins_id_and_score():
    sent = []

    def model(payload: bytes) -> tuple[int, bytes]:
        sent.append(payload.decode())
        return 200, "".join(f"0.{len(line)},1\n" for line in payload.decode().split("\n")).encode()

    out = transform_object(b"T1,1.5,2\nT2,3,4.25\n", Settings.from_request(request()), model)
    assert sent == ["1.5,2\n3,4.25"]  # one MultiRecord request, the ids filtered out
    assert out == b"T1,0.5\nT2,0.6\n"  # id (first field of the input) and probability (second-to-last of the joined record)


def test_a_refused_request_or_a_short_reply_fails_the_job_with_the_model_s_answer():
    settings = Settings.from_request(request())
    with pytest.raises(TransformError, match="answered 400 .*bad row"):
        transform_object(b"T1,x\n", settings, lambda payload: (400, b'{"message": "bad row"}'))
    with pytest.raises(TransformError, match="1 predictions for 2 records"):
        transform_object(b"T1,1\nT2,2\n", settings, lambda payload: (200, b"0.5,0\n"))


def test_what_the_local_aws_cannot_run_is_refused_up_front():
    with pytest.raises(TransformError, match="CSV"):
        Settings.from_request(request(TransformInput={**request()["TransformInput"], "ContentType": "application/json"}))
    with pytest.raises(TransformError, match="Gzip"):
        Settings.from_request(request(TransformInput={**request()["TransformInput"], "CompressionType": "Gzip"}))
