"""How a suite's sections refuse a value: in the platform's words, on the field the platform names.

The pieces every section of :class:`~eval_platform.suites.config.SuiteConfig` shares: a refusal as pydantic collects it
(:func:`refusal`), a delegated parser's :class:`InvalidInput` carried onto its field (:func:`delegated`), the first
problem of a validation error named as the platform names fields (:func:`first_problem`), checks of single values,
and the fields validated before a section that needs them (:func:`earlier`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from eval_platform.core.errors import InvalidInput

# refusals ----------------------------------------------------------------------------------------------------

#: wording of the refusals pydantic itself makes (the validators make every other one)
PYDANTIC_PROBLEMS = {"missing": "is required"}


def refusal(problem: str, field_name: str | None = None) -> PydanticCustomError:
    """A refusal as pydantic collects it. ``field_name`` overrides the path of the value refused: a field a
    delegated parser named (``gate.rules[0].metric``) or one that is not where the value sits."""
    context = {"problem": problem} if field_name is None else {"problem": problem, "field": field_name}
    return PydanticCustomError("invalid_input", "{problem}", context)


@contextmanager
def delegated(rename: Callable[[str], str] = str) -> Iterator[None]:
    """Run a parser the suite delegates to: its :class:`InvalidInput` is reported on the field it names (after
    ``rename``). Any other error it raises (a TypeError on a malformed value) is carried along and raised as it
    is when it is the first problem, as it was when the suite was parsed by hand."""
    try:
        yield
    except PydanticCustomError:
        raise
    except InvalidInput as error:
        raise refusal(error.problem, rename(error.field)) from None
    except Exception as error:
        raise PydanticCustomError("unexpected_error", "{error}", {"error": str(error), "raised": error}) from None


def dotted(location: tuple[int | str, ...]) -> str:
    """pydantic's location of an error as the platform names fields: ``metrics[0].metric``."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "suite"


def first_problem(error: ValidationError) -> Exception:
    """The first problem pydantic found: an :class:`InvalidInput` named as the platform names fields, or the
    error a delegated parser raised."""
    first = error.errors(include_url=False)[0]
    context = first.get("ctx") or {}
    if isinstance(context.get("raised"), Exception):
        return context["raised"]
    problem = context.get("problem") or PYDANTIC_PROBLEMS.get(first["type"], first["msg"])
    return InvalidInput(context.get("field") or dotted(first["loc"]), problem)


# checks of single values, in the platform's wording ----------------------------------------------------------

def of_type(value: Any, kind: type) -> Any:
    """``value`` if it is a ``kind`` (a bool is not an int here)."""
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise refusal(f"must be {kind.__name__}, got {value!r}")
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def int_in(value: Any, low: int, high: int | None, problem: str) -> int:
    if not is_int(value) or value < low or high is not None and value > high:
        raise refusal(f"{problem}, got {value!r}")
    return value


def confidence(value: Any) -> float:
    if not is_number(value) or not 0.5 <= value < 1:
        raise refusal(f"must be in [0.5, 1), got {value!r}")
    return value


def non_empty_strings(value: Any, problem: str) -> list[str]:
    """``value`` if it is a list of non-empty strings (names of approvers, columns); else ``problem``."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise refusal(problem)
    return value


def known_keys(value: Any, known: Mapping[str, Any] | tuple[str, ...], problem: str) -> dict:
    """``value`` as a dict, if it is a mapping of ``known`` keys only; else ``problem``."""
    if not isinstance(value, Mapping) or set(value) - set(known):
        raise refusal(problem)
    return dict(value)


def absent_section() -> Any:
    """An absent section, validated as an empty one (validated: its checks may need the rest of the suite)."""
    return {}


def absent_list() -> Any:
    return []


# the fields validated before a section that needs them ----------------------------------------------------------

@dataclass
class EarlierFields:
    """The suite's fields validated before the section in hand, and the metric names taken so far."""

    fields: Mapping[str, Any]
    metric_names: list[str] = field(default_factory=list)


EARLIER: ContextVar[EarlierFields] = ContextVar("suite_fields_validated_so_far")
#: the fields each section that needs earlier ones reads
NEEDS = {"metrics": ("task_type",), "gate": ("purpose", "metrics", "slices"), "llm": ("metrics",)}


def earlier() -> EarlierFields:
    try:
        return EARLIER.get()
    except LookupError:
        raise RuntimeError("a suite's section is validated as part of a SuiteConfig") from None


def and_list(names: Sequence[str]) -> str:
    """``a, b and c``."""
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


class Section(BaseModel):
    """A section of a suite: immutable once validated, and no key the platform does not know."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    @classmethod
    def only_known(cls, value: Any, listed: Sequence[str] | None = None, *, name_unknown: bool = False) -> dict:
        """``value`` as a dict, if it is a mapping of the section's fields only: what a section's first
        (``mode="before"``) validator returns, so that another key is refused in the platform's words.

        The refusal lists the fields in the order of ``listed`` (default: as declared). It says what the section
        may set; or, ``name_unknown``, that the section must be a mapping with those fields, or which keys are
        unknown."""
        keys = list(listed or cls.model_fields)
        if not name_unknown:
            return known_keys(value, cls.model_fields, f"may only set {and_list(keys)}")
        if not isinstance(value, Mapping):
            raise refusal(f"must be a mapping with {and_list(keys)}")
        unknown = sorted(set(value) - set(cls.model_fields))
        if unknown:
            raise refusal(f"unknown field(s) {unknown}; known: {', '.join(keys)}")
        return dict(value)


