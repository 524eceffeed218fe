"""The workload contract: what is added, what the workload keeps, what is said."""

from __future__ import annotations

from agent.contract import merge_env


def test_merge_keeps_the_workloads_values_and_warns_only_when_they_differ() -> None:
    wanted = {"AWS_ROLE_ARN": "arn:ours", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "R": "x"}
    existing = {"AWS_ROLE_ARN": "arn:theirs", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"}

    merge = merge_env(existing, wanted)

    assert merge.added == {"R": "x"}
    assert merge.kept == {
        "AWS_ROLE_ARN": "arn:theirs",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/t",
    }
    assert merge.differing == {"AWS_ROLE_ARN": "arn:theirs"}
    assert merge.warnings("task web") == [
        "task web: keeps its own AWS_ROLE_ARN (webid-agent would have set it)"
    ]
