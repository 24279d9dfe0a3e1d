"""Fault injection, data side: damaged objects and bad labels never fail the feature job,
every rejected thing is counted by reason, and good records in = good records out."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from labkit.landed import read_landed
from labkit.traffic import landed_history
from labkit.transactions import generate
from localaws.server import LocalAws
from tests.test_feature_job import read_split, run_job

COUNT = 3_000


def ndjson(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in rows)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """Good data in six objects, and beside it every kind of damage the issue names."""
    root = tmp_path_factory.mktemp("faulty")
    data = generate(COUNT, seed=41)
    rows = data.transactions.to_dict("records")
    extra = generate(400, seed=42).transactions.to_dict("records")  # other ids than `rows`
    raw = root / "raw/2026/11/23/10"
    raw.mkdir(parents=True)
    for index in range(0, COUNT, 500):
        (raw / f"part-{index:05d}.gz").write_bytes(gzip.compress(ndjson(rows[index : index + 500])))
    truncated = gzip.compress(ndjson(extra[:200]))
    (raw / "part-truncated.gz").write_bytes(truncated[: len(truncated) // 2])
    damaged = bytearray(gzip.compress(ndjson(extra[200:300])))
    damaged[-6] ^= 0xFF  # the CRC: every byte decompresses, the object is still not trustworthy
    (raw / "part-damaged.gz").write_bytes(bytes(damaged))
    future = [{**r, "timestamp": (pd.Timestamp(r["timestamp"]) + pd.DateOffset(years=5)).strftime("%Y-%m-%dT%H:%M:%SZ")} for r in extra[300:310]]
    conflicting = {**rows[10], "amount": rows[10]["amount"] + 1}  # same id, another amount: which is true?
    identical = rows[20]  # a resent record
    (raw / "part-extra").write_bytes(ndjson([*future, conflicting, identical]))

    labels = root / "labels"
    labels.mkdir()
    data.labels.to_csv(labels / "a-labels.csv", index=False)
    known = data.labels["label_available_at"].min()
    label_of = data.labels.set_index("transaction_id")["is_fraud"]
    bad = pd.DataFrame([
        {"transaction_id": rows[30]["transaction_id"], "is_fraud": "yes", "fraud_scenario": "none", "label_available_at": known},
        {"transaction_id": "", "is_fraud": "0", "fraud_scenario": "none", "label_available_at": known},
        {"transaction_id": rows[31]["transaction_id"], "is_fraud": "0", "fraud_scenario": "none", "label_available_at": "soon"},
        {"transaction_id": rows[40]["transaction_id"], "is_fraud": str(1 - label_of[rows[40]["transaction_id"]]), "fraud_scenario": "none", "label_available_at": known},
        data.labels.iloc[50].astype(str).to_dict(),  # delivered twice, identical
        {"transaction_id": "TXN-NOBODY", "is_fraud": "1", "fraud_scenario": "card_testing", "label_available_at": known},
    ])
    bad.to_csv(labels / "b-more.csv", index=False)
    (labels / "c-broken.csv").write_text("transaction_id;is_fraud\nTXN-1;0\n")
    out = tmp_path_factory.mktemp("faulty-out")
    result = run_job(root, out)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, out, data


def test_bad_data_is_quarantined_by_reason_with_exact_counts(faulty):
    _, out, _ = faulty
    counts = json.loads((out / "quarantine/counts.json").read_text())
    assert {reason: count for reason, count in counts.items() if count} == {
        "corrupt_object": 2,
        "future_timestamp": 10,
        "conflicting_duplicate": 2,  # both copies
        "duplicate": 1,
        "label_bad_value": 3,
        "label_conflicting": 2,  # both labels
        "label_duplicate": 1,
        # TXN-NOBODY's, and the label of the transaction whose two versions were both rejected
        "label_unknown_transaction": 2,
        "label_bad_file": 1,
    }


def test_a_cut_off_object_is_named_with_what_could_be_salvaged(faulty):
    _, out, _ = faulty
    entries = [json.loads(line) for line in (out / "quarantine/corrupt_object.jsonl").read_text().splitlines()]
    assert [e["object"].rsplit("/", 1)[-1] for e in entries] == ["part-damaged.gz", "part-truncated.gz"]
    damaged, truncated = entries
    assert damaged["error"].startswith("damaged gzip") and truncated["error"].startswith("truncated gzip")
    assert 0 < len(truncated["salvaged"]) < 200 and all(json.loads(line)["transaction_id"] for line in truncated["salvaged"])


def test_good_records_in_are_good_records_out(faulty):
    _, out, data = faulty
    schema = json.loads((out / "features/schema/feature_schema.json").read_text())
    assert schema["rows"]["valid"] == COUNT - 1  # all but the transaction with two versions
    assert schema["rows"]["labelled"] == COUNT - 2  # ...and the one with two different labels
    written = sum(len(read_split(out, name)) for name in ("train", "validation", "test"))
    history_only = schema["rows"]["gap_history_only"] + schema["rows"]["maturing_history_only"]
    unlabelled = sum(split["unlabelled"] for split in schema["splits"].values())
    assert written + history_only + unlabelled == COUNT - 1 and unlabelled <= 1


def test_the_lab_steps_readers_name_a_cut_off_object_instead_of_crashing(faulty):
    """Regression: steps 01 and 06 printed an EOFError traceback on a truncated object."""
    root, _, data = faulty
    # A local AWS of its own, in a region of its own (moto's in-process mock would reset every
    # backend of this process, the shared local AWS's stacks included).
    with LocalAws(region="us-west-1") as server:
        s3 = server.session().client("s3")
        s3.create_bucket(Bucket="lab", CreateBucketConfiguration={"LocationConstraint": "us-west-1"})
        for path in sorted((root / "raw").rglob("*")):
            if path.is_file():
                s3.put_object(Bucket="lab", Key=f"raw/{path.relative_to(root / 'raw')}", Body=path.read_bytes())
        for path in sorted((root / "labels").glob("*.csv")):
            s3.put_object(Bucket="lab", Key=f"labels/{path.name}", Body=path.read_bytes())
        landed = read_landed(s3, "lab", "raw/")
        assert sorted(k.rsplit("/", 1)[-1] for k in landed.corrupt_objects) == ["part-damaged.gz", "part-truncated.gz"]
        assert sum(landed.transaction_ids[t] for t in data.transactions["transaction_id"]) == COUNT + 2  # + two copies
        history, labels = landed_history(s3, "lab", "raw/")
        assert len(history) == COUNT - 1 and labels.notna().sum() == COUNT - 2
        assert set(labels.dropna().unique()) == {0.0, 1.0}
