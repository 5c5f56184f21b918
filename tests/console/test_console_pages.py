"""The console's live step graph and its pages for the content, knowledge and templates
services, in a real browser against the shared ``orchestrion up`` (see conftest.py).

As everywhere in these tests, a page that logs an error or warning on its console, or
throws, fails its test.
"""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.console.support import Messages, Platform, create, go, shot, sign_in

GRAPH = """{
  "name": "graph-demo",
  "status": "active",
  "steps": [
    {"id": "prepare", "type": "transform", "with": {"ready": true}},
    {"id": "check", "type": "transform", "needs": ["prepare"], "with": {"ok": true}},
    {"id": "notes", "type": "transform", "needs": ["prepare"], "with": {"text": "fine"}},
    {"id": "sign_off", "type": "approval", "needs": ["check", "notes"], "with": {}}
  ],
  "outputs": {"approved": "{{ steps.sign_off.output.approved }}"}
}"""

ARTICLE = (
    "Marie Curie worked in Paris on radioactivity. Her research on radium and polonium "
    "changed physics and chemistry. Radioactivity research continued at the institute in "
    "Paris for decades, and the institute trained many physicists and chemists."
)


def _x(tab: Page, step: str) -> float:
    box = tab.locator(f'#step-graph [data-step="{step}"]').bounding_box()
    assert box is not None
    return float(box["x"])


def test_the_step_graph_is_layered_by_needs_and_follows_the_execution(
    page: tuple[Page, Messages],
) -> None:
    tab, messages = page
    sign_in(tab)
    create(tab, GRAPH)
    expect(tab.get_by_role("heading", name="graph-demo")).to_be_visible()
    tab.get_by_role("button", name="Run", exact=True).click()
    graph = tab.get_by_role("img", name="Steps of execution")
    expect(graph).to_be_visible()
    # Every step is drawn, those not started yet too, and each says its status in text.
    sign_off = tab.locator('#step-graph [data-step="sign_off"]')
    expect(sign_off).to_have_attribute("data-status", "waiting")
    expect(sign_off).to_contain_text("waiting")
    expect(tab.locator('#step-graph [data-step="check"]')).to_have_attribute(
        "data-status", "succeeded"
    )
    # Columns by needs: prepare, then check and notes side by side, then sign_off.
    assert _x(tab, "prepare") < _x(tab, "check") == _x(tab, "notes") < _x(tab, "sign_off")
    for edge in ("prepare->check", "prepare->notes", "check->sign_off", "notes->sign_off"):
        expect(tab.locator(f'#step-graph [data-edge="{edge}"]')).to_have_count(1)
    # The text alternative names every step with its status and what it runs after.
    description = tab.locator("#step-graph-desc")
    expect(description).to_contain_text("sign_off: waiting, after check and notes")
    expect(graph).to_have_attribute("aria-describedby", "step-graph-desc")
    shot(tab, "execution-graph")
    tab.get_by_role("button", name="Approve step sign_off").click()
    # Live: the node turns as the step's events arrive, without a reload.
    expect(sign_off).to_have_attribute("data-status", "succeeded")
    expect(tab.locator("#execution-status")).to_contain_text("succeeded")
    assert messages.unexpected() == []


def test_content_paste_upload_analysis_and_search(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
    go(tab, "Content")
    expect(tab.get_by_role("heading", name="Content", exact=True)).to_be_focused()
    paste = tab.get_by_role("form", name="Paste text")
    paste.get_by_label("Title (optional)").fill("Curie notes")
    paste.get_by_label("Text", exact=True).fill(ARTICLE)
    tab.get_by_role("button", name="Add text").click()
    expect(tab.get_by_role("heading", name="Curie notes")).to_be_focused()
    # Analysed after the upload answered: the page follows it to the end.
    expect(tab.locator("#document-status")).to_contain_text("processed")
    analysis = tab.get_by_role("region", name="Analysis")
    expect(analysis).to_contain_text("Language")
    expect(analysis.locator("dd").first).to_have_text("en")
    expect(analysis.get_by_role("table", name="Keywords")).to_contain_text("radioactivity")
    expect(analysis.get_by_role("table", name="Entities")).to_contain_text("Paris")
    expect(tab.locator("#summary")).not_to_be_empty()
    shot(tab, "content-document")

    go(tab, "Content")
    upload = tab.get_by_role("form", name="Upload a file")
    upload.get_by_label("File", exact=True).set_input_files(
        files=[
            {
                "name": "notes.md",
                "mimeType": "text/markdown",
                "buffer": b"# Polonium\n\nPolonium was named after Poland by Marie Curie.\n",
            }
        ]
    )
    upload.get_by_label("Tags (optional)").fill("chemistry, history")
    tab.get_by_role("button", name="Upload").click()
    expect(tab.locator("#document-status")).to_contain_text("processed")
    expect(tab.get_by_text("chemistry, history")).to_be_visible()

    go(tab, "Content")
    documents = tab.get_by_role("table").filter(has=tab.get_by_role("link", name="Curie notes"))
    expect(documents).to_contain_text("processed")
    tab.get_by_label("Search the documents").fill("radium polonium")
    tab.get_by_label("Mode").select_option("hybrid")
    tab.get_by_role("button", name="Search").click()
    results = tab.get_by_role("list", name="Search results")
    expect(results.get_by_role("link", name="Curie notes")).to_be_visible()
    shot(tab, "content")
    results.get_by_role("link", name="Curie notes").click()
    expect(tab.get_by_role("heading", name="Curie notes")).to_be_focused()
    assert messages.unexpected() == []


def test_knowledge_import_search_and_a_node_with_its_neighbours(
    page: tuple[Page, Messages],
) -> None:
    tab, messages = page
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
    go(tab, "Knowledge")
    expect(tab.get_by_role("heading", name="Knowledge graph")).to_be_focused()
    graph = tab.get_by_label("Graph (JSON)")
    graph.fill(
        '{"nodes": [{"key": "py", "type": "concept", "name": "Python language"},'
        ' {"key": "fn", "type": "concept", "name": "Python functions"},'
        ' {"key": "dec", "type": "concept", "name": "Decorators"}],'
        ' "edges": [{"source": "fn", "target": "py", "type": "requires"},'
        ' {"source": "dec", "target": "fn", "type": "requires"}]}'
    )
    tab.get_by_role("button", name="Import").click()
    expect(tab.get_by_role("status").filter(has_text="Imported")).to_have_text(
        "Imported 3 nodes and 2 edges."
    )
    expect(tab.get_by_role("link", name="Decorators")).to_be_visible()
    # A graph that is not all right is refused whole, and said why.
    graph.fill('{"nodes": [], "edges": [{"source": "a", "target": "b", "type": "x"}]}')
    tab.get_by_role("button", name="Import").click()
    import_form = tab.locator("form").filter(has=tab.get_by_role("heading", name="Import"))
    expect(import_form.get_by_role("alert")).to_be_visible()

    tab.get_by_label("Search nodes").fill("functions")
    tab.get_by_role("button", name="Search").click()
    results = tab.get_by_role("list", name="Search results")
    expect(results.get_by_role("link", name="Python functions")).to_be_visible()
    shot(tab, "knowledge")
    results.get_by_role("link", name="Python functions").click()
    expect(tab.get_by_role("heading", name="Python functions")).to_be_focused()
    neighbours = tab.locator("#neighbours")
    expect(neighbours.get_by_role("link", name="Python language")).to_be_visible()
    expect(neighbours.get_by_role("link", name="Decorators")).to_be_visible()
    edges = tab.get_by_role("table", name="Edges of this node")
    expect(edges.get_by_role("row").filter(has_text="→ to")).to_contain_text("Python language")
    expect(edges.get_by_role("row").filter(has_text="← from")).to_contain_text("Decorators")
    shot(tab, "knowledge-node")
    assert messages.unexpected("status of 422") == []


def test_templates_marketplace_instantiate_and_run(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
    go(tab, "Templates")
    expect(tab.get_by_role("heading", name="Templates")).to_be_focused()
    main_nav = tab.get_by_role("navigation", name="Main")
    expect(main_nav.get_by_role("link", name="Templates")).to_have_attribute("aria-current", "page")
    expect(main_nav.get_by_role("link", name="Workflows")).not_to_have_attribute(
        "aria-current", "page"
    )
    cards = tab.locator("ul.cards > li")
    expect(cards.first).to_be_visible()
    assert cards.count() >= 8
    tab.get_by_label("Category").select_option("reporting")
    tab.get_by_label("Sort by").select_option("name:asc")
    tab.get_by_role("button", name="Apply").click()
    expect(tab.locator('[data-template="nightly-report"]')).to_be_visible()
    assert "category=reporting" in tab.url
    expect(tab.get_by_label("Category")).to_have_value("reporting")
    shot(tab, "templates")

    tab.get_by_role("link", name="Nightly report").click()
    expect(tab.get_by_role("heading", name="Nightly report", level=1)).to_be_focused()
    readme = tab.get_by_role("region", name="README")
    expect(readme.locator("code").first).to_be_visible()  # Markdown, read into elements
    parameters = tab.get_by_role("group", name="Parameters")
    expect(parameters.get_by_label("title")).to_have_value("Nightly report")
    parameters.get_by_label("title").fill("Night shift")
    parameters.get_by_label("threshold").fill("120")
    tab.get_by_label("Workflow name").fill("night-shift")
    shot(tab, "template")
    tab.get_by_role("button", name="Create workflow").click()
    tab.get_by_role("status").get_by_role("link", name="night-shift").click()

    expect(tab.get_by_role("heading", name="night-shift")).to_be_focused()
    tab.get_by_label("Inputs (JSON)").fill(
        '{"metrics": [{"name": "cpu", "value": 150}, {"name": "disk", "value": 50}]}'
    )
    tab.get_by_role("button", name="Run", exact=True).click()
    expect(tab.locator("#execution-status")).to_contain_text("succeeded")
    expect(tab.locator("#outputs")).to_contain_text("Night shift: 2 metrics, total 200, 1 over 120")
    expect(tab.locator('#step-graph [data-edge="report->text"]')).to_have_count(1)
    assert messages.unexpected() == []


def test_new_pages_answer_deep_links_and_refuse_other_methods(platform: Platform) -> None:
    for path in (
        "/content",
        "/content/x",
        "/knowledge/x",
        "/templates",
        "/templates/x",
        "/analytics",
        "/notifications",
    ):
        answer = httpx.get(f"{platform.base}{path}")
        assert answer.status_code == 200, path
        assert '<script type="module" src="/console/app.js">' in answer.text
    assert httpx.get(f"{platform.base}/console/vendor/sdk.js").status_code == 200
    assert httpx.post(f"{platform.base}/templates").status_code == 405


#: What a Linux pipe holds before its writer blocks.
PIPE_BYTES = 64 * 1024


def test_a_server_that_logged_past_a_pipe_buffer_still_answers(
    page: tuple[Page, Messages], platform: Platform
) -> None:
    """The shared server has written far more than a pipe holds, and the console loads.

    The console's tests once hung on ``/`` after a dozen tests (a refresh test had made
    the next one hang before): ``orchestrion up`` wrote its log (a line per request) to a
    pipe nobody read while it ran, and once the pipe held 64 KiB its next log call
    blocked the event loop - every request then hung. Its output goes to a file now
    (tests/fixtures/processes.py); with a pipe, this test hangs in the loop below.
    """
    tab, messages = page
    with httpx.Client(base_url=platform.base, timeout=30) as client:
        for _ in range(5000):
            if platform.process.output_bytes() > 2 * PIPE_BYTES:
                break
            assert client.get("/api/v1/workflows").status_code == 401  # a log line each
    assert platform.process.output_bytes() > 2 * PIPE_BYTES
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Workflows")).to_be_focused()
    assert messages.unexpected() == []
