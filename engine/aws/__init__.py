"""The AWS adapters (aiobotocore) and the in-memory fake of the same ports."""
