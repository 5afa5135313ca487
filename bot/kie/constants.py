"""Every Kie.ai URL and path in one place (kie-api.md): a correction is one edit here."""

KIE_API_URL = "https://api.kie.ai"
KIE_UPLOAD_URL = "https://kieai.redpandaai.co"

CREATE_TASK_PATH = "/api/v1/jobs/createTask"
RECORD_INFO_PATH = "/api/v1/jobs/recordInfo"
CREDIT_PATH = "/api/v1/chat/credit"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
STREAM_UPLOAD_PATH = "/api/file-stream-upload"

UPLOAD_FOLDER = "bot/inputs"

# Task states of the market API; anything else is unknown and polled again.
STATES_RUNNING = frozenset({"waiting", "queuing", "generating"})
STATE_SUCCESS = "success"
STATE_FAIL = "fail"
