# The greet pipeline's image on Azure: samples/images/hello/app (built offline by devstack/stack/sample_images.py from
# busybox-static) with the same ENTRYPOINT, so the pipeline's empty commandLine runs /app/hello.sh as Batch does.
# Built by infra/hooks/postprovision.sh with `az acr build`.
FROM mcr.microsoft.com/azurelinux/busybox:1.36
COPY app/ /app/
RUN chmod 0755 /app/*.sh
ENTRYPOINT ["/app/hello.sh"]
