"""Helpers the tests share that are no part of glam (servers, child-process entry points)."""
