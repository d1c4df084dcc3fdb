"""siyu (私域): private-domain traffic operations platform."""

__version__ = "0.1.0"
