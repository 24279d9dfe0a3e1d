"""CloudWatch, offline: alarms evaluated from the published metrics (moto stores them, never evaluates)."""
