"""What the sidecar exports: Prometheus metrics and OpenTelemetry spans."""
