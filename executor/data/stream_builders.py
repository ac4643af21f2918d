"""Imports every stream-builder module beyond iid so that each registers itself."""
