"""Rate limits that may have to hold across relay instances (interface + implementations)."""
