# The sample worker image on Azure: the same /app scripts as the local image (samples/images/worker, built offline
# by devstack/stack/sample_images.py from busybox-static), on busybox from Microsoft's registry (no Docker Hub pull limits).
# Built by infra/hooks/postprovision.sh with `az acr build` (in the registry, no local container engine).
FROM mcr.microsoft.com/azurelinux/busybox:1.36
COPY app/ /app/
RUN chmod 0755 /app/*.sh
CMD ["/bin/sh"]
