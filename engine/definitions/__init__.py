"""Reading the user's definitions: strict JSON, sandboxed templates, validation, and the
``DesiredFunction`` of each function prefix (``engine.definitions.desired``). Pure: files come
in through ``RepoFiles`` (``engine.definitions.inputs``).

The package itself imports nothing: a module that needs only a constant of one submodule
(``limits``, ``paths``) must not pay for the templates and the Lambda shapes."""
