# Sourced by benches/load.sh and benches/scale.sh: checks their numeric settings and makes sure
# the tools they drive are there (Debian's wrk is installed when missing and we are root).
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
