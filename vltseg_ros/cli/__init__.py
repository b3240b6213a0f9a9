"""The ``vltseg`` command line (one module per subcommand)."""
