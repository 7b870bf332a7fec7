"""The bottom layer: configuration, errors, ids, hashing, the artifact store, task types and shared states.

Nothing here imports any other part of ``eval_platform``; every other package may import from here.
"""
