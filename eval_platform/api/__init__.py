"""The platform's HTTP API: ``app.create_app`` builds it, ``evalp serve`` runs it.

One router per resource in ``routers/``; the caller and the platform reach routes as dependencies
(``dependencies``); request and response bodies are the models in ``schemas``. Nothing is imported here, so
``python -m eval_platform.api.app`` (which prints the OpenAPI document) runs that module once.
"""
