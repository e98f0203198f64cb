"""FileStorageBackend: the seed's folder layout, an append-only JSONL log per run, record files
as caches of its projection, flock-based run locks and link-published idempotency claims.
"""
