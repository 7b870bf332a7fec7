"""The API's routes, one ``APIRouter`` per resource; :func:`eval_platform.api.app.create_app` includes them all."""
