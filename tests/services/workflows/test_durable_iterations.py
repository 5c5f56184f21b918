"""Loops and for_each record each iteration: a retried execution or a retried attempt
re-runs only what did not complete (a paid call inside a loop is paid once)."""

from __future__ import annotations

from tests.services.workflows.helpers import create_workflow, start, wait_until

# Iteration 2 answers 500 the first time it is called; every other call succeeds.
FLAKY_THIRD = (
    "/flaky/{key}-{{{{ execution.id }}}}-{{{{ loop.index }}}}"
    "?status=500&fail={{{{ 1 if loop.index == 2 else 0 }}}}"
)


async def test_a_retried_loop_reruns_only_the_failed_iteration(
    client, admin_headers, upstream
) -> None:
    key = "loop-retry"
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {
                "id": "pages",
                "type": "loop",
                "with": {
                    "max_iterations": 4,
                    "until": "{{ loop.index == 3 }}",
                    "body": {
                        "type": "http",
                        "with": {"url": upstream.url + FLAKY_THIRD.format(key=key)},
                    },
                },
            }
        ],
        outputs={"calls": "{{ steps.pages.output.outputs | map(attribute='body.call') | list }}"},
    )
    execution = await start(client, admin_headers, workflow_id, wait=15)
    assert execution["status"] == "failed", execution
    assert "iteration 2" in execution["error"]["message"]
    assert [upstream.state.calls[f"{key}-{execution['id']}-{i}"] for i in range(4)] == [1, 1, 1, 0]
    retried = await client.post(
        f"/api/v1/executions/{execution['id']}/retry", headers=admin_headers
    )
    assert retried.status_code == 200, retried.text
    done = await wait_until(
        client, admin_headers, execution["id"], lambda e: e["status"] == "succeeded"
    )
    # Iterations 0 and 1 come from the journal; 2 is called again; 3 runs for the first time.
    assert [upstream.state.calls[f"{key}-{execution['id']}-{i}"] for i in range(4)] == [1, 1, 2, 1]
    assert done["outputs"] == {"calls": [1, 1, 2, 1]}


async def test_a_retried_attempt_resumes_the_loop(client, admin_headers, upstream) -> None:
    key = "loop-attempt"
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {
                "id": "pages",
                "type": "loop",
                "retry": {"max_attempts": 2, "delay": 0.01},
                "with": {
                    "max_iterations": 3,
                    "body": {
                        "type": "http",
                        "with": {"url": upstream.url + FLAKY_THIRD.format(key=key)},
                    },
                },
            }
        ],
    )
    execution = await start(client, admin_headers, workflow_id, wait=15)
    assert execution["status"] == "succeeded", execution
    assert [upstream.state.calls[f"{key}-{execution['id']}-{i}"] for i in range(3)] == [1, 1, 2]
    pages = next(s for s in execution["steps"] if s["id"] == "pages")
    assert pages["attempts"] == 2
    assert pages["output"]["iterations"] == 3


async def test_a_retried_for_each_reruns_only_the_failed_item(
    client, admin_headers, upstream
) -> None:
    workflow_id = await create_workflow(
        client,
        admin_headers,
        [
            {
                "id": "each",
                "type": "http",
                "for_each": "{{ [0, 1, 2] }}",
                "concurrency": 1,
                "with": {
                    "url": upstream.url
                    + "/flaky/fe-retry-{{ execution.id }}-{{ item }}"
                    + "?status=500&fail={{ 1 if item == 1 else 0 }}"
                },
            }
        ],
    )
    execution = await start(client, admin_headers, workflow_id, wait=15)
    assert execution["status"] == "failed", execution
    retried = await client.post(
        f"/api/v1/executions/{execution['id']}/retry", headers=admin_headers
    )
    assert retried.status_code == 200, retried.text
    await wait_until(client, admin_headers, execution["id"], lambda e: e["status"] == "succeeded")
    assert [upstream.state.calls[f"fe-retry-{execution['id']}-{i}"] for i in range(3)] == [1, 2, 1]
