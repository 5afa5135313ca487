"""Every Kie.ai URL and path in one place (kie-api.md, kie-api-more.md): a correction is one edit
here. Facts kie-api-more.md marks uncertain ([?]) say so where they are set."""

KIE_API_URL = "https://api.kie.ai"
KIE_UPLOAD_URL = "https://kieai.redpandaai.co"

# The API families behind KieClient.start/status: a catalog entry names one of these.
API_MARKET = "market"  # jobs/createTask + jobs/recordInfo: most models
API_SUNO = "suno"  # Suno's own generate + generate/record-info
# Suno continuing one of its tracks (`audioId`, with the track's own model): generate/extend,
# read like any Suno task (kie-api-more.md, "Suno: extend a track").
API_SUNO_EXTEND = "suno-extend"
API_VEO = "veo"  # Veo 3.1: veo/generate + veo/record-info, the video as record-info gives it
# Veo 3.1 delivering the 1080p version where Kie offers it (veo.py: once the video is made,
# get-1080p-video until Kie hands it over). Kie may charge for the upgrade: a catalog entry opts in.
API_VEO_1080P = "veo-1080p"
API_RUNWAY = "runway"  # runway/generate + runway/record-detail
API_FLUX = "flux-kontext"  # flux/kontext/generate + flux/kontext/record-info
API_GPT4O = "gpt4o-image"  # gpt4o-image/generate + gpt4o-image/record-info
APIS = (API_MARKET, API_SUNO, API_SUNO_EXTEND, API_VEO, API_VEO_1080P, API_RUNWAY, API_FLUX, API_GPT4O)

CREATE_TASK_PATH = "/api/v1/jobs/createTask"
RECORD_INFO_PATH = "/api/v1/jobs/recordInfo"
SUNO_GENERATE_PATH = "/api/v1/generate"
SUNO_RECORD_INFO_PATH = "/api/v1/generate/record-info"
SUNO_EXTEND_PATH = "/api/v1/generate/extend"
VEO_GENERATE_PATH = "/api/v1/veo/generate"
VEO_RECORD_INFO_PATH = "/api/v1/veo/record-info"
VEO_1080P_PATH = "/api/v1/veo/get-1080p-video"
RUNWAY_GENERATE_PATH = "/api/v1/runway/generate"
RUNWAY_RECORD_DETAIL_PATH = "/api/v1/runway/record-detail"
FLUX_GENERATE_PATH = "/api/v1/flux/kontext/generate"
FLUX_RECORD_INFO_PATH = "/api/v1/flux/kontext/record-info"
GPT4O_GENERATE_PATH = "/api/v1/gpt4o-image/generate"
GPT4O_RECORD_INFO_PATH = "/api/v1/gpt4o-image/record-info"
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

# The dedicated APIs' bodies are flat (no `input` wrapper): the catalog's input is the body,
# plus these. The model id goes into MODEL_FIELD where the API has one (Veo: veo3, veo3_fast,
# veo3_lite; Flux Kontext: flux-kontext-pro, flux-kontext-max); Runway and 4o Image have no
# model field, so there the catalog's Kie model id is the bot's own name for it and not sent.
MODEL_FIELD = "model"
CALLBACK_FIELD = "callBackUrl"

# Veo, Flux Kontext and 4o Image say a task's fate in `successFlag`; its names (Flux Kontext's
# docs; 4o Image's `status` spells them so too) are the state the bot shows and logs.
FLAG_RUNNING = "GENERATING"
FLAG_SUCCESS = "SUCCESS"
FLAG_STATES = {0: FLAG_RUNNING, 1: FLAG_SUCCESS, 2: "CREATE_TASK_FAILED", 3: "GENERATE_FAILED"}
FLAG_STATES_FAIL = frozenset({"CREATE_TASK_FAILED", "GENERATE_FAILED"})

# Veo's 1080p (kie-api-more.md §1, Extras): asked for the first video (`index`) once record-info
# says success; until it is ready Kie answers a non-200 code, 400 "1080P is processing" on the
# create page [?]: those codes keep the task running; any other refusal (a fallback video, a
# ratio without 1080p) means Kie does not offer it, and the video as made is delivered.
VEO_1080P_INDEX = 0
VEO_1080P_PENDING_CODES = frozenset({400})
VEO_1080P = "1080p"  # record-info's `response.resolution` of a video that is 1080p already
# The state shown while the video is made and its 1080p version is not yet (ours, not Kie's).
VEO_1080P_PENDING_STATE = "1080P_PROCESSING"

# Runway's `state`: spelled unlike the market's (`wait`, `queueing`).
RUNWAY_STATES_RUNNING = frozenset({"wait", "queueing", "generating"})
RUNWAY_STATE_SUCCESS = "success"
RUNWAY_STATE_FAIL = "fail"
# Runway's docs call `callBackUrl` "required for all video generation requests" but leave it out
# of the schema's required fields [?]: sent when the caller gives one, else this (None: left out).
RUNWAY_CALLBACK_FALLBACK: str | None = None

# TaskStatus.message when Kie says success but hands over no file.
NO_RESULT = "no result"
# The longest a result file's length can be, in seconds (Suno's songs last minutes): anything
# longer is garbage, kept as "length unknown".
MAX_DURATION = 24 * 3600.0

# Every state an API documents: any other is logged by the caller and polled again.
KNOWN_STATES = (STATES_RUNNING | {STATE_SUCCESS, STATE_FAIL} | SUNO_STATES_RUNNING
                | {SUNO_STATE_SUCCESS} | SUNO_STATES_FAIL | set(FLAG_STATES.values())
                | {VEO_1080P_PENDING_STATE} | RUNWAY_STATES_RUNNING
                | {RUNWAY_STATE_SUCCESS, RUNWAY_STATE_FAIL})

# Where a callback names its task: `data.taskId` (market, Veo, Flux Kontext, 4o Image),
# `data.task_id` (Runway, Suno), or `taskId` beside `data` (a flat callback, Runway Aleph).
CALLBACK_TASK_ID_KEYS = ("taskId", "task_id")

# Callbacks (kie-api.md, Callbacks): signed only when the account owner made an HMAC key;
# the signature covers the task id and the time, not the body.
CALLBACK_TIMESTAMP_HEADER = "X-Webhook-Timestamp"
CALLBACK_SIGNATURE_HEADER = "X-Webhook-Signature"
# Older signatures are refused: a replayed callback cannot be made fresh.
CALLBACK_MAX_AGE = 300.0

# ✨ Improve: Kie's chat models answer in OpenAI's format (kie-api-more.md §7), the model's name
# in the path (no `model` field); the catalog's [improve] table names the model. `stream` must be
# sent as false (its default is true: an SSE stream) and `include_thoughts` as false (its default
# true may put the model's thoughts into the answer [?]).
CHAT_PATH = "/{model}/v1/chat/completions"
CHAT_MODEL = "gemini-2.5-flash"
# Seconds one chat request may take (an answer of a few hundred words comes in seconds).
CHAT_TIMEOUT = 30.0
