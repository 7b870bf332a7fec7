"""Registry tables of LLM calls: the content-addressed call cache and the pinned prompt templates.

``llm_call_cache`` holds one row per distinct call ever made (candidate answer or judge verdict sample),
keyed by the hash of everything that determines the reply (see :mod:`eval_platform.llm.cache`). A row is
written once, as soon as its call returns, and never updated: rerunning an eval reads it instead of calling.

``llm_prompt_templates`` pins each ``template_id@version`` to one text: using a version with an edited
text is refused, so "version 3 of the prompt" means one thing everywhere (lineage) and an edit must bump it.

Migration ``0004_llm_call_cache`` creates both.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from eval_platform.registry.schema import Base, utcnow


class LLMCallRecord(Base):
    """One cached LLM call (candidate or judge) under the hash of its canonical request: replayed, not re-sent."""

    __tablename__ = "llm_call_cache"
    __table_args__ = (Index("ix_llm_call_cache_lookup", "kind", "endpoint", "model", "prompt_id"),)

    cache_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # candidate | judge
    endpoint: Mapped[str] = mapped_column(String(200))
    endpoint_url: Mapped[str] = mapped_column(Text)  # transport when the call was made (not part of the key)
    model: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    prompt_id: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(64))
    #: The canonical document the key hashes: messages, decoding, judge configuration, sample index.
    request: Mapped[dict] = mapped_column(JSON)
    response_text: Mapped[str] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Float, nullable=True)  # at the price table of the call
    latency_seconds: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    response_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    system_fingerprint: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The dataset whose example first needed this call (for retention purges), when the caller said.
    dataset: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    #: The reply's token log-probabilities when the call asked for them (migration ``0010``).
    logprobs: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class PromptTemplateRecord(Base):
    """A version of a prompt template, kept so a cached call and a verdict can name the exact text they used."""

    __tablename__ = "llm_prompt_templates"

    template_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # candidate | judge
    text_hash: Mapped[str] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    system: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
