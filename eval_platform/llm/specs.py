"""The specifications that pin what an LLM call is: where it goes, how it decodes, what it asks, and which
candidate model answers.

The same calls go to the bundled local server, vLLM, Ollama or OpenAI: only the :class:`Endpoint` (base
URL, a stable name, the environment variable holding the API key) changes.

* :class:`Endpoint` — where calls go. Its ``name`` is the endpoint's *identity* in cache keys and lineage;
  its ``base_url`` is only transport (the local server listens on a new free port every run, a deployment
  moves behind another host name), so the same name on two URLs is one endpoint. Two different deployments
  must have two different names.
* :class:`Decoding` — every decoding parameter sent, with its value (defaults included), so the request
  and the cache key are the same thing.
* :class:`PromptTemplate` — ``id``, ``version`` and the text with ``{placeholders}`` filled from a row.
* :class:`CandidateSpec` — the candidate model: endpoint, model name and version, decoding, prompt.

The calls themselves are :class:`~eval_platform.llm.client.LLMClient`'s.
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from eval_platform.core.errors import InvalidInput
from eval_platform.core.installation import installation_config

#: Version of how requests are built and replies read here: part of every cache key, so a change of this
#: code that could change what a call returns invalidates the cache instead of serving stale answers.
LLM_CALL_CODE_VERSION = "1"


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server. ``name`` is the identity (cache keys, lineage); ``base_url`` is transport."""

    name: str
    base_url: str
    api_key_env: str | None = None  # environment variable with the key; never stored or hashed

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise InvalidInput("endpoint.name", f"must be a non-empty name without '/', got {self.name!r}")
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://", "${")):
            raise InvalidInput("endpoint.base_url", f"must be an http(s) URL or ${{VARIABLE}}, got {self.base_url!r}")

    def url(self, installation=None) -> str:
        """The base URL, with ``${VARIABLE}`` references read from the environment (so a registration file
        need not hold a host or a port that changes between runs, like the local server's free port).

        Only variables the installation's operator lists (``llm.expandable_env``) expand, and the result must
        be within ``llm.allowed_base_urls`` (:mod:`eval_platform.core.installation`): a model or judge file must not
        be able to send the process's secrets, or the rows, anywhere its author likes."""

        return (installation or installation_config()).endpoint_url(self.base_url, "endpoint.base_url")

    def api_key(self, installation=None) -> str:
        if self.api_key_env:

            (installation or installation_config()).check_variable(self.api_key_env, "endpoint.api_key_env")
            value = os.environ.get(self.api_key_env)
            if not value:
                raise InvalidInput("endpoint.api_key_env", f"environment variable {self.api_key_env} is not set")
            return value
        return "not-needed"  # local servers (the bundled one, vLLM, Ollama) accept any key

    def identity(self) -> dict:
        return {"name": self.name}

    def record(self) -> dict:
        return {"name": self.name, "base_url": self.base_url}


@dataclass(frozen=True)
class Decoding:
    """Decoding parameters. All of them are sent and all are part of the cache key."""

    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    #: Ask for the reply's token log-probabilities (``logprobs: true``), as a perplexity metric needs: they are
    #: cached with the reply. In the key only when asked, so the keys of calls that never asked are unchanged.
    logprobs: bool = False

    def __post_init__(self):
        def number(name, low, high):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
                raise InvalidInput(f"decoding.{name}", f"must be a number in [{low}, {high}], got {value!r}")

        number("temperature", 0.0, 2.0)
        number("top_p", 0.0, 1.0)
        number("presence_penalty", -2.0, 2.0)
        number("frequency_penalty", -2.0, 2.0)
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidInput("decoding.max_tokens", f"must be an integer >= 1, got {self.max_tokens!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InvalidInput("decoding.seed", f"must be an integer or None, got {self.seed!r}")
        if not isinstance(self.logprobs, bool):
            raise InvalidInput("decoding.logprobs", f"must be true or false, got {self.logprobs!r}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Decoding:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInput("decoding", f"unknown parameter(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def identity(self) -> dict:
        identity = {"temperature": float(self.temperature), "max_tokens": self.max_tokens, "top_p": float(self.top_p),
                    "seed": self.seed, "stop": list(self.stop), "presence_penalty": float(self.presence_penalty),
                    "frequency_penalty": float(self.frequency_penalty)}  # 0 and 0.0 are one key
        if self.logprobs:  # a reply without log-probabilities must never answer a call that needs them
            identity["logprobs"] = True
        return identity

    def request_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": float(self.temperature), "max_tokens": self.max_tokens, "top_p": float(self.top_p),
                  "presence_penalty": float(self.presence_penalty), "frequency_penalty": float(self.frequency_penalty)}
        if self.seed is not None:
            params["seed"] = self.seed
        if self.stop:
            params["stop"] = list(self.stop)
        if self.logprobs:
            params["logprobs"] = True
        return params

    def with_seed(self, seed: int | None) -> Decoding:
        return replace(self, seed=seed)


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned prompt: ``text`` (the user message) and an optional ``system`` message, both with
    ``{placeholders}`` filled from an example's columns (``{{`` and ``}}`` are literal braces)."""

    id: str
    version: str
    text: str
    system: str | None = None

    def __post_init__(self):
        if not isinstance(self.id, str) or not self.id.strip() or "@" in self.id:
            raise InvalidInput("prompt.id", f"must be a non-empty name without '@', got {self.id!r}")
        if isinstance(self.version, int) and not isinstance(self.version, bool):
            object.__setattr__(self, "version", str(self.version))
        if not isinstance(self.version, str) or not self.version.strip():
            raise InvalidInput("prompt.version", f"must be a non-empty string or an integer, got {self.version!r}")
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidInput("prompt.text", "must be a non-empty string")
        for name, part in (("prompt.text", self.text), ("prompt.system", self.system or "")):
            try:
                list(string.Formatter().parse(part))
            except ValueError as error:
                raise InvalidInput(name, f"is not a valid template: {error}") from None

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def placeholders(self) -> tuple[str, ...]:
        names: list[str] = []
        for part in (self.system or "", self.text):
            for _, name, spec, conversion in string.Formatter().parse(part):
                if name is None:
                    continue
                if not name.isidentifier() or spec or conversion:
                    raise InvalidInput("prompt.text", f"placeholder {{{name}}} must be a plain column name")
                if name not in names:
                    names.append(name)
        return tuple(names)

    def render(self, values: Mapping[str, Any]) -> list[dict]:
        """Chat messages for one example; a placeholder without a value is an error naming it."""
        missing = [name for name in self.placeholders if name not in values]
        if missing:
            raise InvalidInput("prompt.text", f"template {self.key} needs column(s) {missing} that the examples lack")
        text_values = {name: _as_text(values[name], name) for name in self.placeholders}
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system.format_map(text_values)})
        messages.append({"role": "user", "content": self.text.format_map(text_values)})
        return messages

    def record(self) -> dict:
        return {"id": self.id, "version": self.version, "text": self.text, "system": self.system}


def _as_text(value: Any, name: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InvalidInput(name, "has a missing value; the prompt cannot be rendered")
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate model behind an OpenAI-compatible endpoint: everything that determines its answers.

    ``model_version`` is what the owner pins (a release date, a weights hash, a fine-tune id): changing it
    misses the cache even when the served model name stays the same.
    """

    endpoint: Endpoint
    model: str
    model_version: str
    prompt: PromptTemplate
    decoding: Decoding = Decoding()

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidInput("model", "must be a non-empty model name")
        if isinstance(self.model_version, int) and not isinstance(self.model_version, bool):
            object.__setattr__(self, "model_version", str(self.model_version))
        if not isinstance(self.model_version, str) or not self.model_version.strip():
            raise InvalidInput("model_version", "must be a non-empty string (what you pin: a date, a weights hash)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateSpec:
        """From a model registration file::

            {"endpoint": {"name": "local-kb", "base_url": "http://127.0.0.1:8000/v1"},
             "model": "kb-qa-v1", "model_version": "1",
             "prompt": {"id": "qa-short", "version": "1", "text": "Question: {prompt}\\nAnswer:"},
             "decoding": {"temperature": 0, "max_tokens": 32}}
        """
        if not isinstance(data, Mapping):
            raise InvalidInput("candidate", "must be a mapping")
        unknown = set(data) - {"endpoint", "model", "model_version", "prompt", "decoding"}
        if unknown:
            raise InvalidInput("candidate", f"unknown key(s) {sorted(unknown)}")
        for key in ("endpoint", "model", "model_version", "prompt"):
            if key not in data:
                raise InvalidInput(f"candidate.{key}", "is required")
        endpoint = data["endpoint"]
        prompt = data["prompt"]
        if not isinstance(endpoint, Mapping):
            raise InvalidInput("candidate.endpoint", "must be a mapping with name and base_url")
        if not isinstance(prompt, Mapping):
            raise InvalidInput("candidate.prompt", "must be a mapping with id, version and text")
        try:
            return cls(endpoint=Endpoint(**endpoint), model=data["model"], model_version=data["model_version"],
                       prompt=PromptTemplate(**prompt), decoding=Decoding.from_dict(data.get("decoding")))
        except TypeError as error:
            raise InvalidInput("candidate", str(error)) from None

    def record(self) -> dict:
        """What lineage records about the candidate (no API key)."""
        return {"endpoint": self.endpoint.record(), "model": self.model, "model_version": self.model_version,
                "prompt": self.prompt.record(), "decoding": self.decoding.identity()}
