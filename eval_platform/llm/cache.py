"""Content-addressed cache of LLM calls: candidate answers and judge verdict samples.

**Key.** A call's key is the SHA-256 of a canonical JSON document holding everything that determines its
reply (:func:`call_key`):

* candidate: endpoint identity (its stable name), model name and version, every decoding parameter,
  the prompt template's id and version, and the rendered messages (so an edited template text misses too);
* judge: the judge's whole pinned configuration (endpoint, model and version, judge prompt id, version and
  text, rubric, output schema, decoding), the question, the reference, the judged answer(s), the sample
  index (sample ``i`` of ``n``; its seed is ``seed + i``) and the rendered messages;
* the version of the calling code (:data:`~eval_platform.llm.specs.LLM_CALL_CODE_VERSION`).

So model B is never served model A's answers, an edited prompt never serves the old prompt's answers, and
changing one decoding parameter misses exactly the calls that parameter affects.

**Storage.** Rows of the registry table ``llm_call_cache`` (:class:`~eval_platform.registry.llm_schema.LLMCallRecord`),
one per call, inserted once (insert-or-ignore: two runs racing on a key keep the first reply). A row is
written as soon as its call returns (batched only with the other replies that arrived meanwhile), so a
run stopped midway resumes paying only for what is missing. Replies are short texts; a row per call is one
small transaction, where artifact-store blobs would be one file per call plus an index row anyway, and
the store's Parquet tables are write-once wholes that cannot grow call by call. The prediction *set* of a
run is still a content-addressed table in the artifact store (the runner's ``put_table``).

Failed calls (retries exhausted, 4xx) are not cached: the next run tries again. A judge reply that does
not parse *is* cached (it is what the pinned judge answered) and stays a recorded judge error.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from eval_platform.core.errors import Conflict
from eval_platform.core.hashing import json_hash
from eval_platform.llm.specs import LLM_CALL_CODE_VERSION, PromptTemplate
from eval_platform.registry.llm_schema import LLMCallRecord, PromptTemplateRecord
from eval_platform.registry.schema import utcnow

if TYPE_CHECKING:
    from sqlalchemy.sql.expression import Executable


def call_key(identity: Mapping[str, Any]) -> str:
    """The cache key of a call: hash of its canonical identity document and of the calling code's version."""
    return json_hash({"llm_call_code": LLM_CALL_CODE_VERSION, **identity})


@dataclass(frozen=True)
class CachedCall:
    """One call's reply as cached: the request's identity, the reply and what it cost (one row of the cache)."""

    cache_key: str
    kind: str
    endpoint: str
    endpoint_url: str
    model: str
    model_version: str
    prompt_id: str
    prompt_version: str
    request: dict
    response_text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    latency_seconds: float
    attempts: int
    response_model: str | None = None
    system_fingerprint: str | None = None
    dataset: str | None = None
    #: The reply's token log-probabilities when the call asked for them: ``{"tokens": [...], "logprobs":
    #: [...]}`` (:func:`encode_logprobs`: ``-inf`` is stored as the string ``"-inf"``, JSON having no number for it).
    logprobs: dict | None = None

    def token_logprobs(self) -> list[float | None] | None:
        """The cached token log-probabilities (``-inf`` restored), or None when the call did not ask for them."""
        return None if self.logprobs is None else decode_logprobs(self.logprobs["logprobs"])


def encode_logprobs(tokens: list[str], logprobs: list[float | None]) -> dict:
    """The cache's JSON of a reply's token log-probabilities (PostgreSQL's JSON refuses ``-Infinity``)."""
    return {"tokens": list(tokens), "logprobs": ["-inf" if v is not None and math.isinf(v) else v for v in logprobs]}


def decode_logprobs(values: list) -> list[float | None]:
    return [None if v is None else -math.inf if v == "-inf" else float(v) for v in values]


_FIELDS = tuple(f.name for f in fields(CachedCall))


class CallCache(Protocol):
    """What the call engine needs of a cache: :class:`LLMCache` (the registry's table) or :class:`MemoryCache`."""

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedCall]: ...

    def put_many(self, records: Iterable[CachedCall]) -> int: ...

    def pin_template(self, template: PromptTemplate, kind: str) -> None: ...


class MemoryCache:
    """The cache in a dict (ad-hoc use, benchmarks of the client alone); same interface as :class:`LLMCache`."""

    def __init__(self):
        self._rows: dict[str, CachedCall] = {}
        self._templates: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedCall]:
        with self._lock:
            return {k: self._rows[k] for k in keys if k in self._rows}

    def put_many(self, records: Iterable[CachedCall]) -> int:
        written = 0
        with self._lock:
            for record in records:
                if record.cache_key not in self._rows:
                    self._rows[record.cache_key] = record
                    written += 1
        return written

    def pin_template(self, template: PromptTemplate, kind: str) -> None:
        digest = _template_hash(template)
        with self._lock:
            known = self._templates.setdefault((template.id, template.version), digest)
        if known != digest:
            raise _template_conflict(template)

    def __len__(self) -> int:
        return len(self._rows)


class FreshCalls:
    """A cache that answers nothing: every call of a canary run goes to the endpoint, since the point of the run is
    to see whether the endpoint still answers as it did. Its replies are not written either (the cache keeps what
    the model answered when it was evaluated); prompt templates are still pinned through ``pinned``."""

    def __init__(self, pinned: CallCache):
        self.pinned = pinned

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedCall]:
        return {}

    def put_many(self, records: Iterable[CachedCall]) -> int:
        return 0

    def pin_template(self, template: PromptTemplate, kind: str) -> None:
        self.pinned.pin_template(template, kind)


class LLMCache:
    """The cache in the registry database (``llm_call_cache`` and ``llm_prompt_templates``)."""

    _CHUNK = 500

    def __init__(self, registry):

        self.registry = registry
        self._record = LLMCallRecord
        self._template = PromptTemplateRecord

    @classmethod
    def from_platform(cls, platform) -> LLMCache:
        return cls(platform.registry)

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedCall]:
        from sqlalchemy import select

        keys = list(dict.fromkeys(keys))
        table = self._record.__table__
        columns = [table.c[name] for name in _FIELDS]
        found: dict[str, CachedCall] = {}
        with self.registry.engine.connect() as connection:
            for start in range(0, len(keys), self._CHUNK):
                chunk = keys[start:start + self._CHUNK]
                for row in connection.execute(select(*columns).where(table.c.cache_key.in_(chunk))):
                    found[row[0]] = CachedCall(*row)
        return found

    def put_many(self, records: Iterable[CachedCall]) -> int:
        """Insert the rows whose key is new (one transaction); returns how many were new."""
        # one level deep: SQLAlchemy only reads the values (``asdict`` would deep-copy every request document)
        rows = [{name: getattr(r, name) for name in _FIELDS} for r in records]
        if not rows:
            return 0
        engine = self.registry.engine
        dialect = engine.dialect.name
        now = utcnow()
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement: Executable = sqlite_insert(self._record).on_conflict_do_nothing(index_elements=["cache_key"])
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            statement = postgresql_insert(self._record).on_conflict_do_nothing(index_elements=["cache_key"])
        else:  # pragma: no cover - other databases: check then insert
            return self._put_portable(rows)

        for row in rows:
            row["created_at"] = now
        with engine.begin() as connection:
            result = connection.execute(statement, rows)
        return max(result.rowcount or 0, 0)

    def _put_portable(self, rows: list[dict]) -> int:  # pragma: no cover
        written = 0
        with self.registry.session() as session:
            for row in rows:
                if session.get(self._record, row["cache_key"]) is None:
                    session.add(self._record(**row))
                    written += 1
        return written

    def pin_template(self, template: PromptTemplate, kind: str) -> None:
        """Record ``template.id@version`` -> its text; refuse a known version whose text changed."""
        from sqlalchemy.exc import IntegrityError

        digest = _template_hash(template)
        with self.registry.session() as session:
            known = session.get(self._template, (template.id, template.version))
            if known is not None:
                if known.text_hash != digest:
                    raise _template_conflict(template)
                return
        try:
            with self.registry.session() as session:
                session.add(self._template(template_id=template.id, version=template.version, kind=kind,
                                           text_hash=digest, text=template.text, system=template.system))
        except IntegrityError:  # another run pinned it meanwhile: check it is the same text
            self.pin_template(template, kind)

    def template(self, template_id: str, version: str) -> PromptTemplate | None:
        with self.registry.session() as session:
            row = session.get(self._template, (template_id, str(version)))
        return None if row is None else PromptTemplate(row.template_id, row.version, row.text, row.system)

    def count(self, kind: str | None = None) -> int:
        from sqlalchemy import func, select

        with self.registry.session() as session:
            query = select(func.count()).select_from(self._record)
            if kind:
                query = query.where(self._record.kind == kind)
            return int(session.scalar(query))


def _template_hash(template: PromptTemplate) -> str:
    return json_hash({"text": template.text, "system": template.system})


def _template_conflict(template: PromptTemplate) -> Conflict:
    return Conflict(f"prompt template {template.key} is already pinned to another text; an edited prompt needs a "
                    f"new version (answers of the old text must not be mistaken for the new one's)")
