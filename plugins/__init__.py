"""Built-in components of negbench (import name ``negbench_plugins``).

Each module is one plugin, registered through the same hooks a third-party
plugin uses: ``tasks/`` (datasets + protocols), ``models/``, ``losses/`` and
``samplers/``.
"""
