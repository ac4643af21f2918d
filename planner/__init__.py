"""Planner: model profiles, pipeline plans, Ferret's closed forms and the bi-level search.

The bottom of the import chain (planner ← sim ← executor ← analysis): no torch here.
"""
