"""Offline checks of infra/: Bicep templates, azd hooks, the pool generator (shared helpers in bicep_model.py)."""
