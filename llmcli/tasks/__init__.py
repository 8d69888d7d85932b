"""Commands' core logic: each task takes an engine and inputs, and returns results."""
