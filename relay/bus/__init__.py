"""The bus between relay instances (R-S2): fan-out, group state and shared counters."""
