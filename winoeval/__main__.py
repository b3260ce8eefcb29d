from winoeval.cli import entry

entry()
