"""Channel adapters: one sub-package per channel behind one small interface (see ``base``)."""
