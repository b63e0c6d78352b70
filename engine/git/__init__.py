"""The Git source: the only package that imports dulwich.

``engine.git.source.GitSource`` mirrors and reads a repository (blocking dulwich work runs in
worker threads); ``engine.git.snapshot.Snapshot`` reads one commit's files by tree path;
``engine.git.state.read_commit_state`` turns one commit into a ``CommitState`` for the
planner; ``engine.git.urls`` classifies and redacts URLs without touching dulwich.
"""
