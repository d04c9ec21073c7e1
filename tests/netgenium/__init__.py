"""Tests of the NET Genium adapter and its emulator."""
