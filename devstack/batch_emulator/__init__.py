"""The Batch data-plane emulator: protocol/ and handlers/ (HTTP), the model, agent, runtimes/, staging/."""
