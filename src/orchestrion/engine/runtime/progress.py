"""Which steps may start, and how many steps are in each status, kept as statuses change.

``advance`` found the steps to start by walking every step (is it pending, are its
needs done?) and ``settle`` read every state's status: two walks over the whole workflow
in every transaction, for a chain of 100 queued steps a sixth of the worker's outcome
transaction, growing with the workflow. :class:`Progress` holds what they asked: the
pending steps whose needs are all done (*ready*), and the count of states in each
status. A listener on ``StepState.status`` keeps it current: a step that becomes done
(or stops being done) moves only its dependents' counts of unmet needs, found through an
index built once per parsed definition (:func:`graph_of`). It keeps, too, what the
expression context shows of each step (``steps.<id>.output`` and ``.status``), which
every attempt's call was built from by reading every state: a listener on
``StepState.output`` replaces a step's entry when it changes, and a context copies the
entries (a shallow copy: a context made earlier keeps the entries it was given).

A progress is built from an execution's states the first time a transition needs it
(one walk) and stays attached to those state objects: kept between transactions with
them (see :mod:`.held`), it is reused as long as they are. Every change of a status
goes through the attribute, so it cannot drift: states loaded again from the database
are new objects and get a new one. A definition whose steps share an id, or need a step
it does not have, has no graph: ``advance`` walks its steps as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

from orchestrion.engine.context import step_entries
from orchestrion.engine.definition import (
    StepDefinition,
    WorkflowDefinition,
    once_per_definition,
)
from orchestrion.engine.models import StepState
from orchestrion.engine.statuses import STEP_DONE, StepStatus, public_step_status

#: The attribute of a ``StepState`` pointing to the progress that counts it.
_ATTRIBUTE = "_orchestrion_progress"


@dataclass(frozen=True)
class Graph:
    """A definition's steps by position, and who needs whom."""

    steps: tuple[StepDefinition, ...]
    #: Position of each step id.
    positions: Mapping[str, int]
    #: How many distinct steps each position needs.
    need_counts: tuple[int, ...]
    #: The positions of the steps needing each step id.
    dependents: Mapping[str, tuple[int, ...]]


@once_per_definition
def graph_of(definition: WorkflowDefinition) -> Graph | None:
    """``definition``'s graph, built once; None when two steps share an id or a step
    needs one that does not exist (those keep the walk over every step)."""
    steps = tuple(definition.steps)
    positions = {step.id: position for position, step in enumerate(steps)}
    if len(positions) != len(steps):
        return None
    dependents: dict[str, list[int]] = {}
    need_counts = []
    for position, step in enumerate(steps):
        needs = set(step.needs)
        if not needs <= positions.keys():
            return None
        need_counts.append(len(needs))
        for need in needs:
            dependents.setdefault(need, []).append(position)
    return Graph(
        steps=steps,
        positions=positions,
        need_counts=tuple(need_counts),
        dependents={need: tuple(sorted(found)) for need, found in dependents.items()},
    )


class Progress:
    """The ready steps and the count of states by status, of one set of states."""

    def __init__(self, graph: Graph, states: Mapping[str, StepState]) -> None:
        self.graph = graph
        self.states = states
        #: States by status (every state of ``states``, in the definition or not).
        self.counts: Counter[str] = Counter(state.status for state in states.values())
        done = {step_id for step_id, state in states.items() if state.status in STEP_DONE}
        #: Per position, how many of its needs are not done.
        self.unmet = [
            count - sum(1 for need in set(step.needs) if need in done)
            for step, count in zip(graph.steps, graph.need_counts, strict=True)
        ]
        #: Positions of the pending steps whose needs are all done.
        self.ready = {
            position
            for position, step in enumerate(graph.steps)
            if not self.unmet[position] and states[step.id].status == StepStatus.PENDING
        }
        #: Positions that became ready, in order, for a walk in progress to pick up.
        self.became_ready: list[int] = []
        #: What expressions read of each state (``steps.<id>``), made when first asked
        #: for; an entry is replaced, never changed, when its state's output or status
        #: is: a context made earlier keeps what it was given.
        self._entries: dict[str, dict[str, Any]] | None = None
        for state in states.values():
            setattr(state, _ATTRIBUTE, self)

    @classmethod
    def of(cls, graph: Graph, states: Mapping[str, StepState]) -> Progress | None:
        """The progress attached to ``states``, or a new one built from them (None when
        a step has no state)."""
        for state in states.values():
            found: Progress | None = getattr(state, _ATTRIBUTE, None)
            if found is not None and found.states is states and found.graph is graph:
                return found
            break
        if not graph.positions.keys() <= states.keys():
            return None
        return cls(graph, states)

    def entries(self) -> Mapping[str, dict[str, Any]]:
        """Each state's ``steps.<id>`` entry of the expression context, by step id."""
        if self._entries is None:
            self._entries = step_entries(self.states)
        return self._entries

    def output_changed(self, step_id: str, output: Any) -> None:
        """A state's output is now ``output``."""
        entries = self._entries
        if entries is not None:
            entries[step_id] = {"output": output, "status": entries[step_id]["status"]}

    def changed(self, step_id: str, old: Any, new: Any) -> None:
        """A state's status went from ``old`` to ``new``."""
        entries = self._entries
        if entries is not None:
            output = entries[step_id]["output"]
            entries[step_id] = {"output": output, "status": public_step_status(new)}
        counts = self.counts
        counts[old] -= 1
        counts[new] += 1
        graph = self.graph
        if (old in STEP_DONE) != (new in STEP_DONE):
            delta = -1 if new in STEP_DONE else 1
            for position in graph.dependents.get(step_id, ()):
                self.unmet[position] += delta
                self._check(position, self.states[graph.steps[position].id].status)
        own = graph.positions.get(step_id)
        if own is not None and StepStatus.PENDING in (old, new):
            # Called before the attribute is set: the state still reads ``old``.
            self._check(own, new)

    def _check(self, position: int, status: Any) -> None:
        ready = not self.unmet[position] and status == StepStatus.PENDING
        if ready and position not in self.ready:
            self.ready.add(position)
            self.became_ready.append(position)
        elif not ready:
            self.ready.discard(position)


def _counting(state: StepState) -> Progress | None:
    progress: Progress | None = getattr(state, _ATTRIBUTE, None)
    if progress is not None and progress.states.get(state.step_id) is state:
        return progress
    return None


@event.listens_for(StepState.status, "set")
def _status_set(target: StepState, value: Any, old: Any, _initiator: Any) -> None:
    progress = _counting(target)
    if progress is not None and value != old:
        progress.changed(target.step_id, old, value)


@event.listens_for(StepState.output, "set")
def _output_set(target: StepState, value: Any, _old: Any, _initiator: Any) -> None:
    progress = _counting(target)
    if progress is not None:
        progress.output_changed(target.step_id, value)
