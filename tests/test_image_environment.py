"""The XGBoost 3.2-0 image environment: the image's versions, and the kit's Processing code
giving identical outputs there and in the project's venv (pandas 2.2.3 vs 3.x, numpy 2.1 vs 2.4)."""
from __future__ import annotations

import filecmp
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.transactions import generate
from localaws.runtime import image_env
from tests.helpers import ROOT

PYTHONS = {"venv": sys.executable, "image": str(image_env.image_python())}
IMAGE_VERSIONS = {
    "xgboost": "3.2.0", "numpy": "2.1.0", "pandas": "2.2.3", "scipy": "1.15.0", "pyarrow": "22.0.0",
    "flask": "3.1.3", "werkzeug": "3.1.8", "gunicorn": "25.3.0", "gevent": "26.4.0", "pip": "26.1",
    "setuptools": "80.10.2", "sagemaker_containers": "2.8.6.post2", "boto3": "1.38.0",
}


def test_the_image_environment_has_the_image_s_python_and_versions():
    script = (
        "import sys, json, importlib.metadata as m\n"
        "names = {'xgboost': 'xgboost-cpu', 'sagemaker_containers': 'sagemaker-containers'}\n"
        f"print(json.dumps({{'python': '%d.%d' % sys.version_info[:2], **{{k: m.version(names.get(k, k)) for k in {list(IMAGE_VERSIONS)!r}}}}}))"
    )
    found = json.loads(subprocess.run([PYTHONS["image"], "-c", script], capture_output=True, text=True, check=True).stdout)
    assert found == {"python": "3.12", **IMAGE_VERSIONS}


def test_the_image_s_collections_abc_patch_is_applied():
    mapping = image_env.site_packages(image_env.IMAGE_DIR) / "sagemaker_containers" / "_mapping.py"
    assert "collections.abc.Mapping" in mapping.read_text()
    # what the serving glue imports, as the image's serve does
    result = subprocess.run([PYTHONS["image"], "-c", "import sagemaker_containers.beta.framework"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def job_inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    data = generate(4_000, seed=17)
    raw = root / "raw" / "2026/11/23/10"
    raw.mkdir(parents=True)
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in data.transactions.to_dict("records"))
    (raw / "part-0.gz").write_bytes(gzip.compress(lines + b'{"transaction_id": "broken", "amount": "x"}\n'))
    (root / "labels").mkdir()
    data.labels.to_csv(root / "labels" / "labels.csv", index=False)
    return root


def run(python: str, script: str, *args: str) -> None:
    result = subprocess.run([python, str(ROOT / "processing" / script), *args], env={"PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def assert_same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    different = [str(p) for p in files_a if not filecmp.cmp(a / p, b / p, shallow=False)]
    assert different == []


def test_feature_job_writes_identical_outputs_in_the_image_and_the_venv(job_inputs, tmp_path):
    for name, python in PYTHONS.items():
        out = tmp_path / name
        run(python, "feature_job.py", "--raw", str(job_inputs / "raw"), "--labels", str(job_inputs / "labels"),
            "--output", str(out / "features"), "--quarantine", str(out / "quarantine"), "--as-of", "2027-01-01T00:00:00")
    assert_same_tree(tmp_path / "venv", tmp_path / "image")


def test_drift_baseline_and_monitor_are_identical_in_the_image_and_the_venv(job_inputs, tmp_path):
    run(PYTHONS["venv"], "feature_job.py", "--raw", str(job_inputs / "raw"), "--labels", str(job_inputs / "labels"),
        "--output", str(tmp_path / "features"), "--quarantine", str(tmp_path / "quarantine"), "--as-of", "2027-01-01T00:00:00")
    reference = tmp_path / "features" / "baseline"
    assert any(reference.iterdir())
    # The monitor reads what a day of capture would hold: the test rows, as CSV requests.
    rows = [line.split(",", 1)[1] for p in sorted((tmp_path / "features" / "test").glob("*.csv")) for line in p.read_text().splitlines()]
    capture = tmp_path / "capture.jsonl"
    capture.write_text("".join(json.dumps({
        "captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "\n".join(rows[i:i + 50]), "encoding": "CSV"}},
        "eventMetadata": {"eventId": str(i), "inferenceTime": "2026-11-23T10:05:00.000Z"}, "eventVersion": "0",
    }) + "\n" for i in range(0, len(rows), 50)))
    monitor = (
        "import json, sys; from datetime import datetime, timezone; sys.path.insert(0, sys.argv[1]); import drift_monitor as dm\n"
        "lines = open(sys.argv[3]).read().splitlines()\n"
        "t0, t1 = datetime(2026, 11, 23, 10, tzinfo=timezone.utc), datetime(2026, 11, 23, 11, tzinfo=timezone.utc)\n"
        "open(sys.argv[4], 'w').write(json.dumps(dm.run_monitor(__import__('pathlib').Path(sys.argv[2]), lines, t0, t1), sort_keys=True, default=str))\n"
    )
    for name, python in PYTHONS.items():
        out = tmp_path / name
        run(python, "drift_monitor.py", "--mode", "baseline", "--reference", str(reference), "--output", str(out / "baseline"), "--uncompared", "hour_of_day")
        result = subprocess.run([python, "-c", monitor, str(ROOT / "processing"), str(out / "baseline"), str(capture), str(out / "report.json")],
                                env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    assert_same_tree(tmp_path / "venv", tmp_path / "image")


def test_without_python_3_12_the_set_up_says_in_one_line_what_to_install(capsys):
    assert image_env.build("/nonexistent/python3.12") == 1
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "install" in message and "PYTHON312=" in message
    assert image_env.MARKER.exists()  # the built environment is left as it was
