"""EventBridge: what moto's events backend does not deliver (targets.py)."""
