"""The Batch emulator through the azure-batch SDK, with private emulators."""
