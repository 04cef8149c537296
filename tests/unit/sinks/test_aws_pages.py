"""`sinks/aws.pages`: the one NextToken loop of the AWS sinks (history, version ids, DescribeParameters)."""

from __future__ import annotations

from typing import Any

from tokendrop_provider.sinks.aws import pages


def test_pages_follow_next_token_and_fetch_each_page_only_when_asked():
    replies = [{"Items": [1, 2], "NextToken": "t1"}, {"Items": [3], "NextToken": "t2"}, {"Items": [4]}]
    calls: list[tuple[str, dict[str, Any]]] = []

    def call(operation: str, **params: Any) -> dict[str, Any]:
        calls.append((operation, params))
        return replies[len(calls) - 1]

    walk = pages(call, "ListThings", Name="/x", MaxResults=2)
    assert calls == []  # nothing is sent before the first page is asked for
    assert next(walk)["Items"] == [1, 2] and len(calls) == 1
    assert [item for page in walk for item in page["Items"]] == [3, 4]
    assert calls == [("ListThings", {"Name": "/x", "MaxResults": 2}),
                     ("ListThings", {"Name": "/x", "MaxResults": 2, "NextToken": "t1"}),
                     ("ListThings", {"Name": "/x", "MaxResults": 2, "NextToken": "t2"})]
