"""The hostile-input corpus (issue 17, Proof): bad requests and hostile blob names, as data.

Placeholders: `@IN@` is the session's input container, `@DATA@` its data container, `@ACCOUNT@` the storage
account's blob endpoint. A request body is either text (sent as is) or a Python object (sent as JSON); bytes are
sent as bytes. Every bad request is expected to end rejected once with `code` and a reason containing `words`.
Blob names are expected to be `kept` (processed, exact name preserved), `rejected` (with `words` in the reason)
or `either` (a name whose treatment may tighten later; it must still end exactly once, safely).
`TOKEN` stands for a secret in an override value: it must never come back in a record or a message.
"""

from __future__ import annotations

TOKEN = "tok-9f1c2e-never-echo"
CANARY = "$AZ_BATCH_TASK_WORKING_DIR/out/pwned"
HOST_CANARY = "/tmp/eventbatch-corpus-pwned"  # what an injection on the host (process runtime, a shell) would make

_OK = ["@DATA@/corpus/ok.txt"]  # an existing blob, so that only the part under test is wrong
_T = ["@IN@/transform/corpus-ok.txt"]


def _req(pipeline="wordcount", inputs=None, **extra):
    return {"pipeline": pipeline, "inputs": _OK if inputs is None else inputs, **extra}


# (label, body, code, words in the reason)
BAD_REQUESTS: list[tuple[str, object, str, str]] = [
    # ---- not a JSON object ---------------------------------------------------------------------------------
    ("truncated-json", "{pipeline: wordcount", "malformed", "not valid JSON"),
    ("empty-body", "", "malformed", "not valid JSON"),
    ("json-null", "null", "malformed", "not an object"),
    ("json-array", "[1, 2]", "malformed", "not an object"),
    ("json-string", '"wordcount"', "malformed", "not an object"),
    ("json-number", "42", "malformed", "not an object"),
    ("deep-nesting", "[" * 60000, "malformed", "too deeply"),
    ("huge-integer", '{"pipeline": "wordcount", "inputs": [' + "9" * 5000 + "]}", "malformed",
     "cannot be read as JSON"),
    ("not-utf8", b"\xff\xfe{\"pipeline\": 1}", "malformed", "not UTF-8"),
    ("trailing-garbage", '{"pipeline": "wordcount", "inputs": ["@DATA@/corpus/ok.txt"]} ; rm -rf /', "malformed",
     "not valid JSON"),
    ("raw-nul", '{"pipeline": "word\x00count"}', "malformed", "not valid JSON"),
    ("broken-with-secret", '{"pipeline": "transform", "overrides": {"environment": {"TRANSFORM_MODE": "'
     + TOKEN + '"', "malformed", "not valid JSON"),
    # ---- wrong shape ---------------------------------------------------------------------------------------
    ("empty-object", {}, "schema", "'pipeline' is required"),
    ("pipeline-number", _req(pipeline=7), "schema", "'pipeline' is required"),
    ("pipeline-empty", _req(pipeline=""), "schema", "'pipeline' is required"),
    ("pipeline-list", _req(pipeline=["wordcount"]), "schema", "'pipeline' is required"),
    ("inputs-missing", {"pipeline": "wordcount"}, "schema", "'inputs' is required"),
    ("inputs-string", _req(inputs="@DATA@/corpus/ok.txt"), "schema", "'inputs' is required"),
    ("inputs-empty", _req(inputs=[]), "schema", "'inputs' is required"),
    ("inputs-object", _req(inputs={"container": "@DATA@"}), "schema", "'inputs' is required"),
    ("input-null", _req(inputs=[None]), "schema", "non-empty string or object"),
    ("input-empty-string", _req(inputs=[""]), "schema", "non-empty string or object"),
    ("input-number", _req(inputs=[123]), "schema", "non-empty string or object"),
    ("input-no-name", _req(inputs=[{"container": "@DATA@"}]), "schema", "must be a blob URL"),
    ("input-extra-key", _req(inputs=[{"container": "@DATA@", "name": "corpus/ok.txt", "sas": "x"}]), "schema",
     "must be a blob URL"),
    ("prefix-not-string", _req(inputs=[{"container": "@DATA@", "prefix": 5}]), "schema", "prefix"),
    ("container-upper", _req(inputs=["UPPER/a.txt"]), "schema", "not a valid container name"),
    ("container-short", _req(inputs=["ab/a.txt"]), "schema", "not a valid container name"),
    ("container-injection", _req(inputs=["$(touch /tmp/eventbatch-corpus-pwned)/a.txt"]), "schema",
     "not a valid container name"),
    ("unknown-field", _req(priority=1), "schema", "unknown field(s) priority"),
    ("unknown-huge-field", _req(**{"f" * 20000: 1}), "schema", "unknown field(s)"),
    ("key-number", _req(idempotencyKey=5), "schema", "idempotencyKey must be"),
    ("key-space", _req(idempotencyKey="has space"), "schema", "idempotencyKey must be"),
    ("key-too-long", _req(idempotencyKey="k" * 200), "schema", "idempotencyKey must be"),
    ("key-traversal", _req(idempotencyKey="../../etc/passwd"), "schema", "idempotencyKey must be"),
    ("key-injection", _req(idempotencyKey="$(touch /tmp/eventbatch-corpus-pwned)"), "schema",
     "idempotencyKey must be"),
    ("input-twice", _req(inputs=["@DATA@/corpus/ok.txt", {"container": "@DATA@", "name": "corpus/ok.txt"}]),
     "schema", "listed twice"),
    ("url-with-sas", _req(inputs=["@ACCOUNT@/@DATA@/corpus/ok.txt?sv=2024&sig=abc"]), "schema",
     "leave the query string"),
    ("overrides-string", _req("transform", _T, overrides="TRANSFORM_MODE=" + TOKEN), "schema",
     "overrides must be an object"),
    ("overrides-env-list", _req("transform", _T, overrides={"environment": ["TRANSFORM_MODE=" + TOKEN]}), "schema",
     "overrides.environment must be an object"),
    ("override-value-object", _req("transform", _T, overrides={"environment": {"TRANSFORM_MODE": {"v": TOKEN}}}),
     "schema", "its value is not shown"),
    ("override-value-huge", _req("transform", _T, overrides={"environment": {"TRANSFORM_MODE": TOKEN * 300}}),
     "schema", "its value is not shown"),
    # ---- no such pipeline ----------------------------------------------------------------------------------
    ("pipeline-unknown", _req(pipeline="nope"), "unknown-pipeline", "'nope' does not exist"),
    ("pipeline-case", _req(pipeline="Transform"), "unknown-pipeline", "does not exist"),
    ("pipeline-injection", _req(pipeline="$(touch /tmp/eventbatch-corpus-pwned)"), "unknown-pipeline",
     "does not exist"),
    ("pipeline-traversal", _req(pipeline="../transform"), "unknown-pipeline", "does not exist"),
    ("pipeline-huge", _req(pipeline="p" * 50000), "unknown-pipeline", "does not exist"),
    ("pipeline-newline", _req(pipeline="transform\nwordcount"), "unknown-pipeline", "does not exist"),
    # ---- outside the pipeline's policy ---------------------------------------------------------------------
    ("outside-prefix", _req("transform", ["@IN@/other/a.txt"]), "outside-policy", "outside pipeline"),
    ("outside-container", _req("transform", ["@DATA@/transform/a.txt"]), "outside-policy", "outside pipeline"),
    ("foreign-account", _req(inputs=["https://evil.example/@DATA@/corpus/ok.txt"]), "outside-policy",
     "not in this app's storage account"),
    ("prefix-outside", _req("transform", [{"container": "@IN@", "prefix": "other/"}]), "outside-policy",
     "outside pipeline"),
    ("no-queue-input", _req("noop", ["@IN@/noop/a.txt"]), "outside-policy", "does not take queue requests"),
    ("too-many-inputs", _req(inputs=[f"@DATA@/corpus/many-{i}.txt" for i in range(5001)]), "outside-policy",
     "takes at most 5000"),
    ("override-not-allowed", _req(overrides={"environment": {"X": TOKEN}}), "outside-policy",
     "does not allow overriding environment"),
    ("override-retries", _req("transform", _T, overrides={"retries": 3}), "outside-policy",
     "does not allow overriding retries"),
    ("override-path", _req("transform", _T, overrides={"environment": {"PATH": "in:/usr/bin:/bin"}}),
     "outside-policy", "'PATH' may not be set"),
    ("override-ld-preload", _req("transform", _T, overrides={"environment": {"LD_PRELOAD": "in/x.so"}}),
     "outside-policy", "'LD_PRELOAD' may not be set"),
    ("override-bash-env", _req("transform", _T, overrides={"environment": {"BASH_ENV": TOKEN}}),
     "outside-policy", "'BASH_ENV' may not be set"),
    ("override-pythonpath", _req("transform", _T, overrides={"environment": {"PYTHONPATH": "in"}}),
     "outside-policy", "'PYTHONPATH' may not be set"),
    ("override-reserved", _req("transform", _T, overrides={"environment": {"AZ_BATCH_NODE_ROOT_DIR": "/"}}),
     "outside-policy", "may not be set"),
    ("override-input-var", _req("transform", _T, overrides={"environment": {"INPUT_PATH": "/etc/shadow"}}),
     "outside-policy", "may not be set"),
    ("override-bad-name", _req("transform", _T, overrides={"environment": {"A=B; touch x": TOKEN}}),
     "outside-policy", "may not be set"),
    ("override-unlisted", _req("transform", _T, overrides={"environment": {"OTHER_SETTING": TOKEN}}),
     "outside-policy", "allows TRANSFORM_MODE"),
    # ---- inputs that are not there -------------------------------------------------------------------------
    ("missing-blob", _req(inputs=["@DATA@/corpus/not-there.txt"]), "missing-blob", "not found"),
    ("missing-container", _req(inputs=["nothere-container/a.txt"]), "missing-blob", "not found"),
    ("empty-prefix", _req(inputs=[{"container": "@DATA@", "prefix": "corpus/none-here/"}]), "missing-blob",
     "not found"),
    # ---- names that are not safe ---------------------------------------------------------------------------
    ("name-traversal", _req(inputs=["@DATA@/corpus/../../etc/passwd"]), "unsafe-name", "'..' path segment"),
    ("name-dot", _req(inputs=["@DATA@/corpus/./ok.txt"]), "unsafe-name", "'..' path segment"),
    ("name-empty-segment", _req(inputs=["@DATA@/corpus//ok.txt"]), "unsafe-name", "empty"),
    ("name-leading-slash", _req(inputs=[{"container": "@DATA@", "name": "/etc/passwd"}]), "unsafe-name", "empty"),
    ("name-backslash", _req(inputs=["@DATA@/corpus\\..\\ok.txt"]), "unsafe-name", "backslash"),
    ("name-newline", _req(inputs=["@DATA@/corpus/a\nb.txt"]), "unsafe-name", "control character"),
    ("name-escape", _req(inputs=["@DATA@/corpus/\x1b[2Jclear.txt"]), "unsafe-name", "control character"),
    ("name-bidi", _req(inputs=["@DATA@/corpus/evil\u202etxt.exe"]), "unsafe-name", "control character"),
    ("name-too-long", _req(inputs=["@DATA@/" + "n" * 1100]), "unsafe-name", "at most 1024"),
    ("url-traversal", _req(inputs=["@ACCOUNT@/@DATA@/corpus/%2e%2e/%2e%2e/x"]), "unsafe-name", "'..' path segment"),
    ("prefix-traversal", _req(inputs=[{"container": "@DATA@", "prefix": "../"}]), "unsafe-name", "'..'"),
]

# A valid request with an idempotency key, then another request with the same key: the second is the conflict.
KEYED_FIRST = {"pipeline": "transform", "inputs": ["@IN@/transform/corpus-ok.txt"], "idempotencyKey": "corpus-key"}
KEYED_CONFLICT = {"pipeline": "transform", "inputs": ["@IN@/transform/corpus-ok.txt"], "idempotencyKey": "corpus-key",
                  "overrides": {"environment": {"TRANSFORM_MODE": TOKEN}}}

# (blob name under the input container, expected outcome, words in the reason when rejected)
HOSTILE_NAMES: list[tuple[str, str, str]] = [
    (f"transform/$(touch {CANARY}-subst).txt", "kept", ""),
    (f"transform/$(touch {HOST_CANARY}).txt", "kept", ""),
    (f"transform/`touch {CANARY}-tick`.txt", "kept", ""),
    (f"transform/a;touch {CANARY}-semi;.txt", "kept", ""),
    (f"transform/a && touch {CANARY}-and.txt", "kept", ""),
    (f"transform/a || touch {CANARY}-or.txt", "kept", ""),
    (f"transform/a | tee {CANARY}-pipe.txt", "kept", ""),
    (f"transform/x > {CANARY}-redirect", "kept", ""),
    (f"transform/'; touch {CANARY}-squote; '.txt", "kept", ""),
    (f'transform/"; touch {CANARY}-dquote; ".txt', "kept", ""),
    ("transform/$IFS$(id)${PATH}.txt", "kept", ""),
    ("transform/$'A'!$!%s%%n.txt", "kept", ""),
    ("transform/-rf", "kept", ""),
    ("transform/--help", "kept", ""),
    ("transform/-", "kept", ""),
    ("transform/*", "kept", ""),
    ("transform/?[a-z]{x,y}.txt", "kept", ""),
    ("transform/~root", "kept", ""),
    ("transform/#frag&q=1%20%2F%2e%2e.txt", "kept", ""),
    ("transform/.hidden", "kept", ""),
    ("transform/...", "kept", ""),
    ("transform/日本語/ファイル.txt", "kept", ""),
    ("transform/emoji 🙂🔥 ünïcödé.txt", "kept", ""),
    ("transform/a/b/c/d/e/f/deep.txt", "kept", ""),
    ("transform/" + "L" * 240 + "/" + "M" * 240 + ".txt", "kept", ""),
    ("transform/zero\u200bwidth.txt", "either", ""),
    ("transform/line\u2028separator.txt", "either", ""),
    ("transform/tab\there.txt", "rejected", "control character"),
    ("transform/new\nline.txt", "rejected", "control character"),
    ("transform/carriage\rreturn.txt", "rejected", "control character"),
    ("transform/esc\x1b]0;title\x07.txt", "rejected", "control character"),
    ("transform/bidi\u202egnp.exe", "rejected", "control character"),
    ("transform/../escape.txt", "rejected", "'..' path segment"),
    ("transform/./dot.txt", "rejected", "'..' path segment"),
    ("transform//empty.txt", "rejected", "empty"),
    ("transform/back\\slash.txt", "rejected", "backslash"),
    ("transform/" + "X" * 1100, "rejected", "at most 1024"),
]
