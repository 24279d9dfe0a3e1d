"""The lab report's page: readable colours, and figures that say what they mean."""
from __future__ import annotations

import pytest

from labkit import report


def relative_luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    light, dark = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_formula_matches_wcag_reference_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # WCAG's classic AA grey


@pytest.mark.parametrize("role", sorted(report.PALETTE))
def test_every_text_colour_meets_wcag_aa_on_its_background(role):
    foreground, background = report.PALETTE[role]
    assert contrast(foreground, background) >= 4.5, (role, contrast(foreground, background))


def test_the_checked_colours_are_the_ones_the_page_uses():
    """A colour pair checked above but not used would prove nothing."""
    drawn = report.STYLE + report._drift_plot({"a": 1.0}, 0.1)
    for role, (foreground, background) in report.PALETTE.items():
        assert foreground in drawn and background in drawn, role


def test_drift_plot_marks_features_over_the_threshold():
    svg = report._drift_plot({"log_amount": 0.43, "category": 1.0, "hour_of_day": 0.02}, 0.1)
    assert svg.count("<rect") == 3 and svg.count(f'fill="{report.PALETTE["over"][0]}"') == 2
    assert "threshold 0.1" in svg and svg.index(">category<") < svg.index(">log_amount<") < svg.index(">hour_of_day<")
    assert report._drift_plot({}, 0.1) == ""


def test_links_point_at_the_runs_region_on_aws_and_at_the_local_aws_offline():
    aws = {"00_preflight": {"region": "eu-west-1", "bucket": "lab-bucket", "endpoint_url": ""}, "05_deploy_endpoint": {"endpoint_name": "E"}}
    links = dict(report._links(aws))
    assert "region=eu-west-1" in links["s3://lab-bucket/features/"] and "eu-west-1.console.aws.amazon.com" in links["endpoint E"]
    offline = {"00_preflight": {"region": "us-east-1", "bucket": "b", "endpoint_url": "http://127.0.0.1:5000"}}
    assert "aws --endpoint-url http://127.0.0.1:5000 --region us-east-1 s3 ls s3://b/raw/" in dict(report._links(offline))["s3://b/raw/"]


def test_the_report_script_builds_the_page_from_the_steps_results_or_says_what_to_run(tmp_path):
    """Regression: by hand there was no documented way to the report (`python -m labkit.report`
    worked only with lab_scripts on the path)."""
    from tests.helpers import isolated_env, run_step

    nothing = run_step("report.py", isolated_env(), cwd=tmp_path)
    assert nothing.returncode != 0 and nothing.stderr.strip().splitlines() == [
        "✗ no step results in build/lab-results/: run the steps first (from this directory)"
    ], nothing.stderr
    results = tmp_path / "build/lab-results"
    results.mkdir(parents=True)
    (results / "00_preflight.json").write_text('{"step": "00_preflight", "key_figure": "3 stacks ready in eu-west-1", '
                                               '"region": "eu-west-1", "backend": "AWS", "endpoint_url": "", "bucket": "b"}')
    built = run_step("report.py", isolated_env(), cwd=tmp_path)
    assert built.returncode == 0 and "build/lab-report/index.html" in built.stdout, built.stdout + built.stderr
    page = (tmp_path / "build/lab-report/index.html").read_text()
    assert "3 stacks ready in eu-west-1" in page and "by hand" in page and "eu-west-1.console.aws.amazon.com" in page
