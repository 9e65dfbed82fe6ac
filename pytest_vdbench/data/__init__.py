"""Tabular datasets a manifest names: read and encoded (``tables``), split once per case (``split``)."""
