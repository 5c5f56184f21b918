"""What step types need from the platform, declared as typed requirements.

A step type lists the requirements it needs (``requires = (HTTP,)``); the process that
runs it provides them (:class:`Resources`), and a step reads one with
``call.need(HTTP)``, typed as what the requirement names. A step receives only what it
declared, so a step type's module says everything it depends on. A requirement that
this process does not provide fails the step with a clear, non-retryable message.

The runtime itself provides :data:`STEPS` (run a nested body, for composite steps) and
:data:`JOURNAL` (durable checkpoints inside an attempt); services provide the others.
New requirements (a content or knowledge client...) are declared next to the step types
that need them, or here when several share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import httpx

from orchestrion.engine.netguard import NetGuard, Resolver, guarded_client

if TYPE_CHECKING:
    from orchestrion.engine.definition import StepBody
    from orchestrion.engine.llm.backend import LlmBackend
    from orchestrion.engine.mcp.servers import McpServers
    from orchestrion.engine.outcomes import ModelUsage, Outcome, StepCall

T = TypeVar("T")


@dataclass(frozen=True)
class Requirement(Generic[T]):
    """A named capability of the platform whose value is a ``T``."""

    name: str
    description: str

    def __repr__(self) -> str:
        return f"Requirement({self.name!r})"


class Unavailable(LookupError):
    """A step asked for a requirement it did not declare or this process lacks."""

    def __init__(self, requirement: Requirement[Any], *, declared: bool) -> None:
        self.requirement = requirement
        reason = "is not available in this process" if declared else "was not declared"
        super().__init__(f"{requirement.name} ({requirement.description}) {reason}")


class Resources:
    """Requirements and what this process provides for them (immutable)."""

    def __init__(self, provided: Mapping[Requirement[Any], Any] | None = None) -> None:
        self._provided: dict[Requirement[Any], Any] = dict(provided or {})

    def get(self, requirement: Requirement[T]) -> T | None:
        """The value provided for ``requirement``, or None."""
        value: T | None = self._provided.get(requirement)
        return value

    def __contains__(self, requirement: object) -> bool:
        return requirement in self._provided

    def with_(self, extra: Mapping[Requirement[Any], Any]) -> Resources:
        """These resources and ``extra`` (``extra`` wins)."""
        return Resources({**self._provided, **extra})

    def only(self, requirements: tuple[Requirement[Any], ...]) -> Resources:
        """What a step that declared ``requirements`` may see."""
        return Resources({r: self._provided[r] for r in requirements if r in self._provided})


@dataclass(frozen=True)
class HttpAccess:
    """HTTP clients and the destination policy of tenants' requests.

    ``client`` is the platform's own (operator-configured destinations, trusted);
    ``guarded`` reaches only public addresses or ``allowlist`` entries and connects to
    the address it checked (see :mod:`orchestrion.engine.netguard`). ``resolver``
    replaces DNS (tests). ``max_response_bytes`` caps what an ``http`` step reads.
    """

    client: httpx.AsyncClient
    allowlist: tuple[str, ...] = ()
    max_response_bytes: int = 10 * 1024 * 1024
    resolver: Resolver | None = None
    guard: NetGuard = field(init=False, repr=False)
    guarded: httpx.AsyncClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        guard = NetGuard(self.allowlist, resolver=self.resolver)
        # Frozen: the derived fields are set once, here.
        object.__setattr__(self, "guard", guard)
        object.__setattr__(self, "guarded", guarded_client(guard))


class StepRunner(Protocol):
    """Runs a nested step body (a loop's ``body``) as the runtime runs any step."""

    async def run_body(self, body: StepBody, call: StepCall) -> Outcome:
        """One run of ``body`` with ``call``'s context, never raising."""
        ...


@dataclass(frozen=True)
class JournalEntry:
    """What a step recorded under one key of its journal."""

    output: Any
    usage: tuple[ModelUsage, ...] = field(default=())


class Journal(Protocol):
    """Durable checkpoints inside one step (or iteration), kept across its attempts.

    A composite step (a loop) records each part as it completes; a retried or crashed
    attempt finds them and runs only what is missing. A part's model usage is counted
    when it is recorded, once.
    """

    async def get(self, call: StepCall, part: int) -> JournalEntry | None:
        """What was recorded for ``part`` of this step, if anything."""
        ...

    async def put(self, call: StepCall, part: int, entry: JournalEntry) -> bool:
        """Record ``part`` (once: a second record of the same part is ignored); whether
        this call recorded it, and so counted its usage."""
        ...


class ServiceCallError(Exception):
    """A platform service refused or could not answer a step's call.

    ``status`` is the HTTP status it answered (None: it could not be reached);
    ``retryable`` says whether the same call may succeed later (unreachable, 5xx, 429).
    """

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ServiceCalls(Protocol):
    """Calls to the platform's other services (content, knowledge...) for a step.

    A call acts inside the execution's tenant with only ``permissions`` (what the step
    needs, never more), so a workflow reaches what its tenant owns and nothing else.
    """

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        call: StepCall,
        permissions: tuple[str, ...],
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The JSON the service answered (raises :class:`ServiceCallError`)."""
        ...


class ChildWorkflowError(Exception):
    """A child workflow could not start, failed, or did not finish in time."""


class ChildWorkflows(Protocol):
    """Runs another workflow of the tenant as a child of the calling step."""

    async def run(
        self, call: StepCall, *, workflow_id: str, inputs: dict[str, Any], seconds: float
    ) -> Any:
        """Start it, wait for its end; its outputs (raises ChildWorkflowError)."""
        ...


HTTP: Requirement[HttpAccess] = Requirement("http", "an HTTP client and destination policy")
LLM: Requirement[LlmBackend] = Requirement("llm", "model providers, budgets and token streaming")
MCP: Requirement[McpServers] = Requirement("mcp", "the MCP servers steps may call")
STEPS: Requirement[StepRunner] = Requirement("steps", "running nested step bodies")
JOURNAL: Requirement[Journal] = Requirement("journal", "durable checkpoints within a step")
SERVICES: Requirement[ServiceCalls] = Requirement(
    "services", "calls to the platform's other services on the tenant's behalf"
)
CHILDREN: Requirement[ChildWorkflows] = Requirement(
    "children", "running other workflows as child executions"
)
