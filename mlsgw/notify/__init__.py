"""Where notices go: the interface (:mod:`.base`) and one module per channel."""

from mlsgw.notify.base import Delivery, Notifier

__all__ = ["Delivery", "Notifier"]
