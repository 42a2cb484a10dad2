"""``meshop convert``: Compose files into Service documents.

``normalise`` runs the Compose tool's own normalisation (``docker-compose config``) and indexes the source
file's lines; ``compose`` (pure, with ``fields`` and ``routes``) turns the normalised project into Service
documents, the warnings for what meshop cannot express, and the secrets to put into Consul.
"""
