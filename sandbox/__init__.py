"""What runs the service on one machine without Azure: emulators, the local Functions runner."""
