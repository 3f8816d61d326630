"""The ``netlab`` command line: one module per subcommand (ipspace netlab style)."""
