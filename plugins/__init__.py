"""Built-in model plugins (installed as ``winoeval.plugins``)."""
