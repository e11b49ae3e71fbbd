"""The Batch service model: one account's state and the operation groups around it; BatchModel is the facade."""

from devstack.batch_emulator.model.facade import BatchModel

__all__ = ["BatchModel"]
