"""AwsConfig validation, the cost ceiling, and what works without the ``aws`` extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from breedclf.aws import AwsConfig
from breedclf.aws._requests import estimate_cost
from breedclf.config import validate_config
from breedclf.errors import ConfigurationError

ROLE = "arn:aws:iam::123456789012:role/SageMaker"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"bucket": "s3://b"}, "bare S3 bucket name", id="bucket-uri"),
        pytest.param({"bucket": "bkt", "role": "SageMakerRole"}, "IAM role ARN", id="role"),
        pytest.param(
            {"bucket": "bkt", "instance_count": 3}, "train the same model 3 times", id="count"
        ),
        pytest.param({"bucket": "bkt", "max_wait_hours": 8}, "spot training only", id="wait"),
        pytest.param(
            {"bucket": "bkt", "instance_typo": "x"}, "did you mean 'instance_type'", id="typo"
        ),
    ],
)
def test_invalid_configs_name_the_field(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        validate_config(AwsConfig, values)


def test_cost_ceiling_is_price_times_count_times_hours() -> None:
    aws = AwsConfig(bucket="bkt", role=ROLE, instance_type="ml.g5.xlarge", max_run_hours=2)
    text = estimate_cost(aws, instance_type="ml.g5.xlarge", count=2, hours=2)
    assert text == "ml.g5.xlarge × 2 × 2 h × $1.408/h ≤ $5.63"
    custom = AwsConfig(bucket="bkt", hourly_prices={"ml.trn1.2xlarge": 1.5})
    assert estimate_cost(custom, instance_type="ml.trn1.2xlarge", count=1, hours=1).endswith(
        "$1.50"
    )
    assert "set hourly_prices" in estimate_cost(custom, instance_type="ml.x", count=1, hours=1)


def test_without_the_extra_the_error_names_it(tmp_path: Path) -> None:
    (tmp_path / "aws.yaml").write_text("bucket: my-bucket\nregion: us-east-1\n")
    code = """
import sys
sys.modules["boto3"] = None  # as if breedclf[aws] were not installed
import breedclf.aws
from breedclf.aws.entry import parse_arguments  # the container entry point needs no SDK
from breedclf.errors import MissingDependencyError
try:
    breedclf.aws.AwsSession
except MissingDependencyError as exc:
    print(exc)
from typer.testing import CliRunner
from breedclf.cli import app
result = CliRunner().invoke(app, ["aws", "upload", ".", "--aws", sys.argv[1]])
print(result.exception)
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "aws.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    first, second = done.stdout.strip().splitlines()
    assert "needs the optional package 'boto3'" in first
    assert "pip install 'breedclf[aws]'" in first
    assert "pip install 'breedclf[aws]'" in second  # breedclf aws ... says the same
