"""The shared protocol: the bottom layer every method and report stands on.

Leaf modules (standard library and small third-party packages only): `errors`, `io`,
`progress`. On top of them, still importing nothing from `methods/`, `reports/` or the
orchestration: `dist` (which process am I), `schema` and `settings` (configuration as
dataclasses), `config` (the layered YAML), `artifact` (everything cached), `context` (what a
method is given), `sids`, `prompt`, `beam`, `metrics`, `stats`, `manifest`.
"""
