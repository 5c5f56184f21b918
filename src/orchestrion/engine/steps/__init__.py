"""The step types of the platform, one module each.

A new step type is a module here (or in any installed package, listed under the
``orchestrion.step_types`` entry point group) defining one :class:`StepType` subclass,
plus its line below. See docs/workflows.md, "Writing a step type".
"""

#: Every module whose step types the default registry loads, in no particular order.
MODULES: tuple[str, ...] = (
    "orchestrion.engine.steps.transform",
    "orchestrion.engine.steps.http",
    "orchestrion.engine.steps.delay",
    "orchestrion.engine.steps.approval",
    "orchestrion.engine.steps.sub_workflow",
    "orchestrion.engine.steps.fail",
    "orchestrion.engine.steps.switch",
    "orchestrion.engine.steps.loop",
    "orchestrion.engine.steps.wait_for_event",
    "orchestrion.engine.steps.llm",
    "orchestrion.engine.steps.mcp",
    "orchestrion.engine.steps.content",
    "orchestrion.engine.steps.plugin",
    "orchestrion.engine.steps.knowledge",
    "orchestrion.engine.steps.notify",
    "orchestrion.engine.steps.flag",
)
