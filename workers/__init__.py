"""Background work: the outbox relay and the RQ jobs that deliver what is owed."""
