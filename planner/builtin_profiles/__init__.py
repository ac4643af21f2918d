"""Roofline profiles of the papers' models on their GPUs (`MODEL-DEVICE.json`), made by
`scripts/make_builtin_profiles.py`; a package so that the JSON files ship with the wheel."""
