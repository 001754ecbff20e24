#!/usr/bin/env bash
# Run a command with the local Kafka, Elasticsearch and Redis up; stop afterwards only the
# services that this script started (ones already running stay up). Keeps the command's exit
# status, also when it fails or is interrupted.
#   usage: infra/local/with-services.sh COMMAND [ARG...]
set -uo pipefail

harclip="${HARCLIP:-.venv/bin/harclip}"
started="$(mktemp "${TMPDIR:-/tmp}/harclip-started.XXXXXX")"

stop_started() {
    if [[ -s "$started" ]]; then
        # shellcheck disable=SC2046  # one service name per line
        "$harclip" services down $(cat "$started") || true
    fi
    rm -f "$started"
}
trap 'stop_started; exit 130' INT
trap 'stop_started; exit 143' TERM

"$harclip" services up --started-file "$started" || { rc=$?; stop_started; exit "$rc"; }
"$@"
rc=$?
stop_started
exit "$rc"
