"""Registered data sources. Importing this package registers the built-ins."""
