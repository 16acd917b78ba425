# pipeline.bash: what cdc-source and cdc-sink share, sourced by both: their
# options, env files, and the hand-over of the two stage commands (the
# arrays up and down) to pgcdc-pair, which supervises them.  The sourcing
# script sets prog and usage_text; cdc-status, which reads the same env files,
# also sets usage_status (the exit status of a usage error, default 2) and
# defines own_option (below).

warn() { echo "$prog: warning: $*" >&2; }
fail() { echo "$prog: $*" >&2; exit 1; }
usage_error() {
	echo "$prog: error: $*" >&2
	echo "Try \"$prog --help\" for more information." >&2
	exit "${usage_status:-2}"
}

# The variables set (and not empty) in the environment: env files do not
# override them, so that "CDC_TOPIC=x cdc-source -e FILE" means what it says.
declare -A from_env=()
while IFS= read -r name; do
	[ -z "${!name}" ] || from_env[$name]=1
done < <(compgen -e)

# load_env_file FILE: export the KEY=VALUE lines of FILE.  Blank lines and
# lines whose first non-blank character is "#" are skipped; the value is the
# rest of the line as it is, less one pair of matching quotes around it.
# Nothing is expanded and nothing else is special; any other line is an error.
load_env_file() {
	local line n=0 key val
	[ -f "$1" ] && [ -r "$1" ] || usage_error "cannot read env file \"$1\""
	while IFS= read -r line || [ -n "$line" ]; do
		n=$((n + 1))
		[[ $line =~ ^[[:blank:]]*(#|$) ]] && continue
		[[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] ||
			usage_error "$1:$n: not a KEY=VALUE line"
		key=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
		if [[ $val =~ ^\"(.*)\"$ || $val =~ ^\'(.*)\'$ ]]; then
			val=${BASH_REMATCH[1]}
		fi
		[ -n "${from_env[$key]:-}" ] || export "$key=$val" ||
			usage_error "$1:$n: cannot set \"$key\""
	done <"$1"
}

# require NAME WHAT: NAME must be set, and not empty: no demo defaults.
require() {
	[ -n "${!1:-}" ] && return 0
	echo "$prog: error: $1 is not set: give $2 in the environment or an env file (-e)" >&2
	exit "${usage_status:-2}"
}

# split_opts NAME VALUE: the array NAME holds VALUE split at white space,
# with no quoting and no globbing: extra options for a stage.
split_opts() {
	IFS=$' \t\n' read -r -d '' -a "$1" <<<"$2"
}

# parse_args ARGS...: options into env_files and dry_run; help and version.
# A word the sourcing script's own_option WORD takes (status 0) is its own.
env_files=() dry_run=0
parse_args() {
	while [ $# -gt 0 ]; do
		if declare -F own_option >/dev/null && own_option "$1"; then
			shift
			continue
		fi
		case $1 in
		-e | --env-file)
			[ $# -ge 2 ] || usage_error "option \"$1\" requires a file"
			env_files+=("$2")
			shift ;;
		--env-file=*) env_files+=("${1#*=}") ;;
		-e?*) env_files+=("${1#-e}") ;;
		-n | --dry-run) dry_run=1 ;;
		-h | --help)
			printf '%s' "$usage_text" 2>/dev/null || fail "cannot write the help"
			exit 0 ;;
		-V | --version)
			echo "$prog $(pg-cdc-tail --version 2>/dev/null | sed -n '1s/.* //p')" 2>/dev/null ||
				fail "cannot write the version"
			exit 0 ;;
		--) shift; break ;;
		-*) usage_error "unrecognized option \"$1\"" ;;
		*) break ;;
		esac
		shift
	done
	[ $# -eq 0 ] || usage_error "unexpected argument \"$1\""
}

# quote WORD...: the words as the shell would read them back, quoted only
# when they need to be.
quote() {
	local w out=''
	for w; do
		if [[ $w =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
			out+=" $w"
		else
			out+=" ${w@Q}"
		fi
	done
	printf '%s' "${out# }"
}

# run_pipe: with -n, print the pipeline as a shell script that would run
# it; otherwise run it under pgcdc-pair, as this script's process (its name
# stays $prog), which stops, reports and exits as cdc-source(1) says.
run_pipe() {
	local w
	if [ "$dry_run" -eq 1 ]; then
		[ -z "${KAFKA_BROKERS:-}" ] || echo "export KAFKA_BROKERS=$(quote "$KAFKA_BROKERS")"
		echo "$(quote "${up[@]}") |"
		quote "${down[@]}"
		echo
		exit 0
	fi
	for w in "${up[@]}"; do
		[ "$w" != '|' ] || usage_error "the upstream stage's options cannot hold the word \"|\""
	done
	mkdir -p -- "$CDC_STATE_DIR" || fail "cannot make the state directory \"$CDC_STATE_DIR\""
	mkdir -p -- "$CDC_METRICS_DIR" || fail "cannot make the metrics directory \"$CDC_METRICS_DIR\""
	exec -a "$prog" pgcdc-pair --name="$prog" --timeout="$CDC_STOP_TIMEOUT" -- \
		"${up[@]}" '|' "${down[@]}"
}

# The tools installed beside this script come first.
PATH=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd):$PATH
