"""provision: Docker hosts anywhere, a successor to Docker Machine."""

__version__ = "0.1.0"
