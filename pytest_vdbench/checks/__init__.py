"""The generated checks: the tests a manifest turns into, their expectations and metrics."""
