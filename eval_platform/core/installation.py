"""What the operator of an installation allows to run: the allow-lists no API caller can widen.

A model file or a suite is written by whoever registers it, so what it may make the platform do is decided
by the operator, in a file only the operator writes: ``$EVAL_PLATFORM_INSTALL_CONFIG`` when set, else
``<home>/installation.yaml``; without either the defaults below apply. Never the API: a caller may only
narrow these lists (name fewer trusted types), never add to them.

.. code-block:: yaml

    llm:
      allowed_base_urls:          # where LLM calls (candidates and judges) may go, after ${VAR} expansion
        - http://127.0.0.1:*      # scheme://host[:port|:*][/path prefix]; ':*' = any port, no port = the
        - https://api.openai.com/v1   # scheme's default port; a path is a prefix on '/' boundaries
      expandable_env:             # variables a model or judge file may expand as ${VAR} or name as api_key_env
        - EVAL_LLM_BASE_URL
        - OPENAI_API_KEY
    skops:
      trusted_types:              # types beyond skops' own safe defaults that a model file may be loaded with
        - sklearn.tree._tree.Tree

Defaults: LLM calls only to loopback (``http://127.0.0.1``, ``http://localhost``, ``http://[::1]``, any port:
the project's local server, :mod:`eval_platform.llm.server`); only ``EVAL_LLM_BASE_URL`` expands (the demo's
variable for that server's address), so no secret of the process (database password, API keys) can be put
in a URL or sent as a bearer token unless the operator lists it; skops may trust ``sklearn.tree._tree.Tree``
beyond its own defaults (the compiled tree of scikit-learn's tree ensembles: arrays only).

A URL is compared by its parsed parts (scheme, host, port, path), never as a string prefix, so
``http://127.0.0.1.evil.example`` or ``http://127.0.0.1:80@evil.example`` do not pass for loopback; a URL
with user information is always refused. The file is read once per process (:func:`installation_config`);
registration checks against it, and every LLM client checks again right before its first call, in the
process that makes the calls (a Dagster run reads the file as it is then).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eval_platform.core.config import DEFAULT_HOME
from eval_platform.core.errors import InvalidInput

INSTALL_CONFIG_ENV = "EVAL_PLATFORM_INSTALL_CONFIG"
INSTALL_CONFIG_FILE = "installation.yaml"

DEFAULT_ALLOWED_BASE_URLS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
#: the demo's (and tests') address of the project's local LLM server
DEFAULT_EXPANDABLE_ENV = ("EVAL_LLM_BASE_URL",)
#: scikit-learn's compiled tree (gradient boosting, random forests, decision trees): arrays only
DEFAULT_TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KNOWN = {"llm": {"allowed_base_urls", "expandable_env"}, "skops": {"trusted_types"}}


class NotAllowed(InvalidInput):
    """The installation's operator does not allow this (an endpoint, a variable, a trusted type)."""


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int | None  # None: any port
    path: str  # "" or "/a/b" without a trailing slash

    def admits(self, scheme: str, host: str, port: int, path: str) -> bool:
        if (scheme, host) != (self.scheme, self.host) or (self.port is not None and port != self.port):
            return False
        path = path.rstrip("/")
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _parse_allowed(entry: str) -> _Origin:
    field = "llm.allowed_base_urls"
    if not isinstance(entry, str):
        raise InvalidInput(field, f"entries are URLs, got {entry!r}")
    any_port = False
    text = entry
    parts = urlsplit(text)
    if parts.netloc.endswith(":*"):
        any_port = True
        text = text.replace(parts.netloc, parts.netloc[:-2], 1)
        parts = urlsplit(text)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidInput(field, f"{entry!r} must be http(s)://host[:port|:*][/path]")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise InvalidInput(field, f"{entry!r} must not have user information, a query or a fragment")
    try:
        port = None if any_port else (parts.port or _DEFAULT_PORTS[parts.scheme])
    except ValueError:
        raise InvalidInput(field, f"{entry!r} has an invalid port") from None
    return _Origin(parts.scheme, parts.hostname.lower(), port, parts.path.rstrip("/"))


def _names(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(field, f"must be a list of non-empty strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class InstallationConfig:
    """The operator's allow-lists (see the module's documentation)."""

    allowed_base_urls: tuple[str, ...] = DEFAULT_ALLOWED_BASE_URLS
    expandable_env: tuple[str, ...] = DEFAULT_EXPANDABLE_ENV
    trusted_types: tuple[str, ...] = DEFAULT_TRUSTED_TYPES
    source: str = "defaults"  # where it was read from (shown in errors, so the operator knows what to edit)

    def __post_init__(self):
        for name in self.expandable_env:
            if not _VARIABLE_NAME.fullmatch(name):
                raise InvalidInput("llm.expandable_env", f"{name!r} is not an environment variable name")
        object.__setattr__(self, "_origins", tuple(_parse_allowed(e) for e in self.allowed_base_urls))

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None, source: str = "defaults") -> InstallationConfig:
        document = document or {}
        if not isinstance(document, Mapping):
            raise InvalidInput("installation", f"{source} must be a mapping")
        unknown = sorted(set(document) - set(_KNOWN))
        for section, keys in _KNOWN.items():
            value = document.get(section) or {}
            if not isinstance(value, Mapping):
                raise InvalidInput(section, f"{source}: must be a mapping")
            unknown += [f"{section}.{k}" for k in sorted(set(value) - keys)]
        if unknown:
            raise InvalidInput("installation", f"{source}: unknown key(s) {unknown}")
        llm, skops = document.get("llm") or {}, document.get("skops") or {}
        values: dict[str, Any] = {"source": source}
        # a key left out keeps its default; an empty list allows nothing
        if "allowed_base_urls" in llm:
            values["allowed_base_urls"] = _names(llm["allowed_base_urls"], "llm.allowed_base_urls")
        if "expandable_env" in llm:
            values["expandable_env"] = _names(llm["expandable_env"], "llm.expandable_env")
        if "trusted_types" in skops:
            values["trusted_types"] = _names(skops["trusted_types"], "skops.trusted_types")
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike) -> InstallationConfig:
        import yaml

        path = Path(path)
        try:
            document = yaml.safe_load(path.read_text())  # operator-written, still never a tag that builds objects
        except (OSError, yaml.YAMLError) as error:
            raise InvalidInput("installation", f"{path} could not be read: {error}") from error
        return cls.from_dict(document, source=str(path))

    # skops ------------------------------------------------------------------------------------------
    def check_trusted_types(self, requested: Iterable[str], field: str = "trusted_types") -> tuple[str, ...]:
        """The caller's trusted types, refused unless every one is on the operator's list."""
        requested = tuple(sorted({t for t in requested if t}))
        outside = [t for t in requested if t not in self.trusted_types]
        if outside:
            raise NotAllowed(field, f"type(s) {outside} may not be trusted on this installation (its operator allows "
                                    f"{list(self.trusted_types)}; see {self.source})")
        return requested

    # LLM endpoints ----------------------------------------------------------------------------------
    def check_variable(self, name: str, field: str) -> None:
        if name not in self.expandable_env:
            raise NotAllowed(field, f"environment variable {name!r} may not be used by model or judge files on this "
                                    f"installation (its operator allows {list(self.expandable_env)}; see {self.source})")

    def expand(self, template: str, field: str) -> str:
        """``template`` with every ``${VAR}`` read from the environment: only variables the operator lists."""
        def value(match: re.Match) -> str:
            name = match.group(1)
            if not _VARIABLE_NAME.fullmatch(name):
                raise InvalidInput(field, f"${{{name}}} is not a variable reference")
            self.check_variable(name, field)
            resolved = os.environ.get(name)
            if not resolved:
                raise InvalidInput(field, f"environment variable {name} is not set")
            return resolved

        return _VARIABLE.sub(value, template)

    def check_url(self, url: str, field: str) -> str:
        """``url`` if it is within ``llm.allowed_base_urls``; else :class:`NotAllowed` naming ``field``."""
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            raise InvalidInput(field, "is not a valid URL") from None
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise InvalidInput(field, "must be an http(s) URL")
        if "@" in parts.netloc:  # user information: a secret in the URL, or a host that is not what it looks like
            raise NotAllowed(field, "must not contain user information (user:password@)")
        host = parts.hostname.lower()
        if not any(o.admits(parts.scheme, host, port, parts.path) for o in self._origins):  # type: ignore[attr-defined]
            # the expanded URL is not echoed: it may hold an environment value
            raise NotAllowed(field, f"{parts.scheme}://{host}:{port} is not an allowed LLM endpoint on this installation "
                                    f"(its operator allows {list(self.allowed_base_urls)}; see {self.source})")
        return url

    def endpoint_url(self, base_url: str, field: str) -> str:
        """The endpoint's base URL expanded and checked: what calls may be sent to."""
        return self.check_url(self.expand(base_url, field), field)

    def check_endpoint(self, endpoint, field: str) -> str:
        """Everything an :class:`~eval_platform.llm.specs.Endpoint` makes the platform read or call:
        its URL's variables, the URL after expansion, and its API key's variable. Returns the URL."""
        url = self.endpoint_url(endpoint.base_url, f"{field}.base_url")
        if endpoint.api_key_env:
            self.check_variable(endpoint.api_key_env, f"{field}.api_key_env")
        return url


@functools.lru_cache(maxsize=8)
def _load(path: str | None) -> InstallationConfig:
    return InstallationConfig.load(path) if path else InstallationConfig()


def installation_config(home: str | os.PathLike | None = None) -> InstallationConfig:
    """The installation's allow-lists, read once per process: ``$EVAL_PLATFORM_INSTALL_CONFIG``, else
    ``<home>/installation.yaml`` (home: as :class:`~eval_platform.core.config.PlatformConfig` resolves it), else
    the defaults. A file named by the variable must exist: a typo must not silently mean the defaults."""
    explicit = os.environ.get(INSTALL_CONFIG_ENV)
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not path.is_file():
            raise InvalidInput(INSTALL_CONFIG_ENV, f"{path} does not exist")
        return _load(str(path))

    home_path = Path(home or os.environ.get("EVAL_PLATFORM_HOME") or DEFAULT_HOME).expanduser().resolve()
    candidate = home_path / INSTALL_CONFIG_FILE
    return _load(str(candidate) if candidate.is_file() else None)


def reset_installation_config() -> None:
    """Forget what was read (tests that change the file within one process)."""
    _load.cache_clear()


__all__ = ["DEFAULT_ALLOWED_BASE_URLS", "DEFAULT_EXPANDABLE_ENV", "DEFAULT_TRUSTED_TYPES", "INSTALL_CONFIG_ENV",
           "InstallationConfig", "NotAllowed", "installation_config", "reset_installation_config"]
