"""Planner: model profiles, pipeline plans, Ferret's closed forms and the bi-level search.

The bottom of the import chain (planner ← sim ← executor ← analysis): no torch here.
"""

from planner.native import guard

guard(__name__, __file__)  # first: a kernel whose source changed since its build must not load
