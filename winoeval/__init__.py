"""winoeval: how well do vision-language models reason compositionally?"""

__version__ = "0.1.0"
