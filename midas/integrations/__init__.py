"""Thin gateways over message providers (SMTP, SendGrid, Mailgun, Twilio, Slack), built lazily from config."""
