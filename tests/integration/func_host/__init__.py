"""The local Functions host as a subprocess on the test apps in apps/."""
