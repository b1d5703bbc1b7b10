"""intake: email-driven intake and triage for public consultations."""

__version__ = "0.1.0"
