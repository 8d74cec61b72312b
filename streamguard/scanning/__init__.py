"""`streamguard scan`: find vulnerable functions in Java/Python code with the champions; text, JSON or SARIF 2.1.0."""
