"""Reading the user's definitions: strict JSON, sandboxed templates, validation, and the
``DesiredFunction`` of each function prefix. Pure: files come in through ``RepoFiles``."""

from engine.definitions.desired import (
    DEPLOY_KINDS,
    SUFFIXES,
    FileKind,
    build_desired,
    content_hash,
    group_files,
    is_lambda_file,
    split_path,
)
from engine.definitions.inputs import RepoFiles

__all__ = [
    "DEPLOY_KINDS",
    "SUFFIXES",
    "FileKind",
    "RepoFiles",
    "build_desired",
    "content_hash",
    "group_files",
    "is_lambda_file",
    "split_path",
]
