"""The job directory's layout: the file and folder names the sidecar, Aura and the SDK agree on."""

RECORD_NAME = "job.json"
REQUESTS_DIR = "requests"
