"""Waiting on AWS: never silent for long, and a job's sub-status shown."""
from __future__ import annotations

from labkit import polling
from labkit import sagemaker as lab_sagemaker


def test_a_long_wait_shows_progress_and_a_training_jobs_secondary_status(monkeypatch, capsys):
    """Regression: a job InProgress for minutes printed one line, then nothing until it ended."""
    clock = [0.0]
    monkeypatch.setattr(lab_sagemaker.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(lab_sagemaker.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))

    def describe(name: str) -> dict:  # starting for 30 s, training for 30 s, then done
        if clock[0] < 30:
            return {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting"}
        if clock[0] < 60:
            return {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"}
        return {"TrainingJobStatus": "Completed", "SecondaryStatus": "Completed"}

    job = lab_sagemaker.wait_for_job(describe, "fraudlab-xgb-1", "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Completed"
    lines = capsys.readouterr().out.splitlines()
    assert "fraudlab-xgb-1: InProgress (Starting) after 0 s" in lines[0]
    assert any("InProgress (Training) after" in line for line in lines)
    assert "fraudlab-xgb-1: Completed after" in lines[-1]
    quiet = [float(line.rsplit(" after ", 1)[1].removesuffix(" s")) for line in lines]
    assert max(b - a for a, b in zip(quiet, quiet[1:])) <= polling.PROGRESS_SECONDS + 5  # never quiet for long
    assert any("still InProgress (Starting)" in line for line in lines)
