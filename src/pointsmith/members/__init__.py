"""Members: identity, attributes, status, verification, invite codes."""
