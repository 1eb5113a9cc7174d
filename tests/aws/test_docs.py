"""docs/aws.md: its AWS config, IAM policy, Python and cost example are real."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from breedclf.aws import AwsConfig, load_aws_config
from breedclf.aws._requests import estimate_cost
from breedclf.config import validate_config

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "aws.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(PAGE) if lang == language]


def test_the_aws_config_block_and_example_validate() -> None:
    (body,) = blocks("yml")  # ```yaml blocks of docs/ are experiment configs
    config = validate_config(AwsConfig, yaml.safe_load(body), "docs/aws.md")
    assert config.spot
    example = load_aws_config(ROOT / "examples" / "aws" / "aws.yaml")
    assert example.instance_type == config.instance_type


def test_the_iam_policy_is_json_and_covers_every_call() -> None:
    (body,) = blocks("json")
    policy = json.loads(body)
    actions = {a for s in policy["Statement"] for a in _list(s["Action"])}
    source = "".join(
        (ROOT / "src" / "breedclf" / "aws" / name).read_text() for name in ("_session.py",)
    )
    called = set(re.findall(r"sagemaker\.(?:client\(\"sagemaker\"\)\.)?([a-z_]+)\(", source))
    for method in called:
        if method.startswith(("create_", "describe_", "delete_", "stop_", "list_")):
            action = "sagemaker:" + "".join(p.capitalize() for p in method.split("_"))
            assert action in actions, action
    assert "iam:PassRole" in actions


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_the_python_example_compiles() -> None:
    (body,) = blocks("python")
    compile(body, "docs/aws.md[python]", "exec")


def test_the_cost_example_is_what_the_command_prints() -> None:
    aws = AwsConfig(bucket="bkt")
    line = estimate_cost(aws, instance_type="ml.g4dn.xlarge", count=1, hours=2)
    assert f"`cost ceiling: {line}`" in PAGE
