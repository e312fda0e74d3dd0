"""dcv-bot: find out why a TLS certificate's domain control validation fails, and say when it is fixed."""

__version__ = "0.1.0"
