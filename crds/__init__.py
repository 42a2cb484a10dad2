"""JSON Schemas (YAML), one per document kind; installed as the package data ``meshop.crds``."""
