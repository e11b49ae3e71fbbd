"""Azure Batch data-plane emulator on loopback.

Layers (moto/Azurite style): ``http_server``/``handlers``/``routes`` speak HTTP and SharedKey and know nothing
about containers; ``model`` owns pools, nodes, jobs and tasks and every state transition; ``scheduler`` and
``agent`` place tasks on node slots and run them through ``runtimes`` (containers or host processes) and
``staging`` (resource/output files); ``store`` persists the model in sqlite so it survives a restart.
"""
