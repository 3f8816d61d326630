"""Link shaping: kernel tc backend, user-space link emulator, trace formats and replay.

This package never imports ``netlab`` or ``endpoints``: it can shape any
interface on its own.
"""
