"""Security: authentication, authorisation, the audit log, detection."""
