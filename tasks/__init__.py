"""Built-in task plugins (installed as ``winoeval.tasks``)."""
