"""The platform's HTTP API: ``create_app`` builds it, ``evalp serve`` runs it (see :mod:`eval_platform.api.app`)."""

__all__ = ["create_app", "openapi_document", "openapi_json"]


def __getattr__(name: str):
    # imported on first use, so ``python -m eval_platform.api.app`` runs the module only once
    if name in __all__:
        from eval_platform.api import app

        return getattr(app, name)
    raise AttributeError(name)
