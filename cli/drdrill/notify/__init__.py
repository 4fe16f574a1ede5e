"""Notifications: webhook targets fed from the run's event stream, delivered in the
background (drdrill.notify.deliver), and the templated messages of notify steps
(drdrill.notify.message)."""
