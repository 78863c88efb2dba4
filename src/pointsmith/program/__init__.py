"""The program file: schema, validation and the versioned store."""
