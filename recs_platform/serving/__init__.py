"""Serving: the inference server (SageMaker's container contract), the local endpoint process,
the SageMaker deployment, the `/recommend` facade and the storefront. No Dagster imports."""
