"""The wire contract (../shared/CONTRACT.md) as code: topics, envelope, event data models."""
