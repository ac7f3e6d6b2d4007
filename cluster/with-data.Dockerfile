# The component image with the CityBikes data inside, for the kind cluster only (cluster/images.sh): the pipeline's
# pods read data_uri=/opt/citybikes/data/Bikeshare.csv. A real cluster mounts a volume or reads a bucket instead.
ARG BASE
FROM ${BASE}
COPY data/Bikeshare.csv data/CHECKSUMS.sha256 /opt/citybikes/data/
