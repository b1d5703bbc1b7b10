"""aiosmtpd SMTP server fixture (filled in by the transports work)."""
