"""Every Kie.ai URL and path in one place (kie-api.md): a correction is one edit here."""

KIE_API_URL = "https://api.kie.ai"
KIE_UPLOAD_URL = "https://kieai.redpandaai.co"

# The API families behind KieClient.start/status: a catalog entry names one of these.
API_MARKET = "market"  # jobs/createTask + jobs/recordInfo: most models
API_SUNO = "suno"  # Suno's own generate + generate/record-info
APIS = (API_MARKET, API_SUNO)

CREATE_TASK_PATH = "/api/v1/jobs/createTask"
RECORD_INFO_PATH = "/api/v1/jobs/recordInfo"
SUNO_GENERATE_PATH = "/api/v1/generate"
SUNO_RECORD_INFO_PATH = "/api/v1/generate/record-info"
CREDIT_PATH = "/api/v1/chat/credit"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
STREAM_UPLOAD_PATH = "/api/file-stream-upload"

UPLOAD_FOLDER = "bot/inputs"

# Task states of the market API; anything else is unknown and polled again.
STATES_RUNNING = frozenset({"waiting", "queuing", "generating"})
STATE_SUCCESS = "success"
STATE_FAIL = "fail"

# Suno's `data.status`. FIRST_SUCCESS means one track of two is ready: still running. Anything
# not listed here is unknown and polled again.
SUNO_STATES_RUNNING = frozenset({"PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS"})
SUNO_STATE_SUCCESS = "SUCCESS"
SUNO_STATES_FAIL = frozenset({
    "CREATE_TASK_FAILED", "GENERATE_AUDIO_FAILED", "CALLBACK_EXCEPTION", "SENSITIVE_WORD_ERROR",
})
# Kie's docs mark Suno's `callBackUrl` required; whether a request without one is refused is
# unverified. Sent when the caller gives no callback URL (None: the key is left out).
SUNO_CALLBACK_FALLBACK: str | None = None
# Suno calls back at each stage (`data.callbackType`); these say the task is still running, so
# they are not worth a status read: only "complete" (or an error) is.
SUNO_CALLBACK_TYPE = "callbackType"
SUNO_INTERIM_CALLBACKS = frozenset({"text", "first"})

# TaskStatus.message when Kie says success but hands over no file.
NO_RESULT = "no result"
# The longest a result file's length can be, in seconds (Suno's songs last minutes): anything
# longer is garbage, kept as "length unknown".
MAX_DURATION = 24 * 3600.0

# Every state either API documents: any other is logged by the caller and polled again.
KNOWN_STATES = (STATES_RUNNING | {STATE_SUCCESS, STATE_FAIL} | SUNO_STATES_RUNNING
                | {SUNO_STATE_SUCCESS} | SUNO_STATES_FAIL)

# Callbacks (kie-api.md, Callbacks): signed only when the account owner made an HMAC key;
# the signature covers the task id and the time, not the body.
CALLBACK_TIMESTAMP_HEADER = "X-Webhook-Timestamp"
CALLBACK_SIGNATURE_HEADER = "X-Webhook-Signature"
# Older signatures are refused: a replayed callback cannot be made fresh.
CALLBACK_MAX_AGE = 300.0
