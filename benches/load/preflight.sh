# Sourced by benches/load.sh and benches/scale.sh: checks their numeric settings, makes sure
# the tools they drive are there (Debian's wrk is installed when missing and we are root), and
# runs the servers with the environment hitcounter.service gives ours.
# Usage: preflight NAME SETTING...   (each SETTING a variable name; *_CPU may be 0)
preflight() {
    local name=$1 setting tool
    shift
    for setting in "$@"; do
        if ! [[ ${!setting} =~ ^[0-9]+$ ]] || { [[ $setting != *CPU ]] && ((${!setting} == 0)); }; then
            echo "$name: $setting must be a positive integer, not '${!setting}'" >&2
            exit 2
        fi
    done
    if ! command -v wrk >/dev/null && [ "$(id -u)" -eq 0 ]; then
        echo "== installing Debian's wrk"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    fi
    for tool in wrk curl taskset; do
        command -v "$tool" >/dev/null || {
            echo "$name: $tool is missing (apt-get install -y wrk curl util-linux)" >&2
            exit 2
        }
    done
}

# The environment hitcounter.service gives ours, for the servers alone (`env "${SERVER_ENV[@]}"
# cmd`): its GLIBC_TUNABLES (malloc on transparent huge pages), unless GLIBC_TUNABLES is already
# set, even empty, in which case everything inherits that one. Prints what the servers get.
unit_environment() {
    SERVER_ENV=("GLIBC_TUNABLES=${GLIBC_TUNABLES-$(sed -n 's/^Environment=GLIBC_TUNABLES=//p' hitcounter.service)}")
    echo "== servers run with ${SERVER_ENV[*]}"
}
