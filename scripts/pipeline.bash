# pipeline.bash: what cdc-source and cdc-sink share, sourced by both: env
# files in the format of systemd's EnvironmentFile=, and two stages joined by
# a pipe, supervised so that neither outlives the other.  The sourcing script
# sets prog, usage_text and the stage commands.

# Messages in the tools' format: "prog: message", "prog: warning: message".
warn() { echo "$prog: warning: $*" >&2; }
fail() { echo "$prog: $*" >&2; exit 1; }
usage_error() {
	echo "$prog: error: $*" >&2
	echo "Try \"$prog --help\" for more information." >&2
	exit 2
}

# wait -n -p needs bash 5.1
if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501)); then
	fail "bash 5.1 or later is needed (this is $BASH_VERSION)"
fi

# The variables set (and not empty) in the environment: env files do not
# override them, so that "CDC_TOPIC=x cdc-source -e FILE" means what it says.
declare -A from_env=()
while IFS= read -r name; do
	[ -z "${!name}" ] || from_env[$name]=1
done < <(compgen -e)

# env_assign FILE LINE KEY VALUE: export one assignment of an env file.
env_assign() {
	if [[ ! $3 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
		warn "$1:$2: ignoring invalid variable name \"$3\""
	elif [ -z "${from_env[$3]:-}" ] && ! export "$3=$4" 2>/dev/null; then
		warn "$1:$2: cannot set \"$3\""
	fi
}

# load_env_file FILE: export the assignments of FILE, parsed as systemd parses
# EnvironmentFile= (the state machine of its src/basic/env-file.c): "#" and
# ";" start comment lines, lines without "=" are skipped, whitespace around
# keys and unquoted values is dropped, an unquoted backslash keeps the next
# character and joins lines, '...' is literal, "..." takes \" \\ \` \$ and
# backslash-newline, and quoted values may span lines.  No $ expansion.
load_env_file() {
	local LC_ALL=C file=$1 text c state=pre_key key='' val='' kws=-1 vws=-1 line=1 i

	if [ ! -f "$file" ] || [ ! -r "$file" ]; then
		usage_error "cannot read env file \"$file\""
	fi
	IFS= read -r -d '' text <"$file"
	for ((i = 0; i < ${#text}; i++)); do
		c=${text:i:1}
		case $state in
		pre_key)
			case $c in
			'#' | ';') state=comment ;;
			' ' | $'\t' | $'\n' | $'\r') ;;
			*) state=key key=$c kws=-1 ;;
			esac ;;
		key)
			case $c in
			$'\n' | $'\r') state=pre_key key='' ;;
			=) state=pre_value val='' vws=-1 ;;
			' ' | $'\t') [ "$kws" -ge 0 ] || kws=${#key}; key+=$c ;;
			*) kws=-1 key+=$c ;;
			esac ;;
		pre_value)
			case $c in
			$'\n' | $'\r')
				[ "$kws" -lt 0 ] || key=${key:0:kws}
				env_assign "$file" "$line" "$key" "$val"
				state=pre_key key='' ;;
			"'") state=squote ;;
			'"') state=dquote ;;
			\\) state=value_escape ;;
			' ' | $'\t') ;;
			*) state=value val+=$c ;;
			esac ;;
		value)
			case $c in
			$'\n' | $'\r')
				[ "$vws" -lt 0 ] || val=${val:0:vws}
				[ "$kws" -lt 0 ] || key=${key:0:kws}
				env_assign "$file" "$line" "$key" "$val"
				state=pre_key key='' ;;
			\\) state=value_escape vws=-1 ;;
			' ' | $'\t') [ "$vws" -ge 0 ] || vws=${#val}; val+=$c ;;
			*) vws=-1 val+=$c ;;
			esac ;;
		value_escape)
			state=value
			case $c in
			$'\n' | $'\r') ;;
			*) val+=$c ;;
			esac ;;
		squote)
			case $c in
			"'") state=pre_value ;;
			*) val+=$c ;;
			esac ;;
		dquote)
			case $c in
			'"') state=pre_value ;;
			\\) state=dquote_escape ;;
			*) val+=$c ;;
			esac ;;
		dquote_escape)
			state=dquote
			case $c in
			'"' | \\ | '`' | '$') val+=$c ;;
			$'\n') ;;
			*) val+=\\$c ;;
			esac ;;
		comment)
			case $c in
			\\) state=comment_escape ;;
			$'\n' | $'\r') state=pre_key ;;
			esac ;;
		comment_escape)
			case $c in
			$'\n' | $'\r') state=pre_key ;;
			*) state=comment ;;
			esac ;;
		esac
		[ "$c" != $'\n' ] || line=$((line + 1))
	done
	case $state in
	pre_value | value* | squote | dquote*)
		[ "$state" != value ] || [ "$vws" -lt 0 ] || val=${val:0:vws}
		[ "$kws" -lt 0 ] || key=${key:0:kws}
		env_assign "$file" "$line" "$key" "$val" ;;
	esac
}

# split_opts NAME VALUE: the array NAME holds VALUE split at white space,
# with no quoting and no globbing: extra options for a stage.
split_opts() {
	IFS=$' \t\n' read -r -d '' -a "$1" <<<"$2"
}

# The stages' pids and names, the ones not yet waited for, the stop timer's
# pid, and the state of a stop.
up_pid='' down_pid='' live=() timer='' tick='' pending=0 stopping=0 escalated=0 failure='' failure_by_signal=0
declare -A stage_name=()

is_live() {
	local p
	for p in "${live[@]}"; do [ "$p" != "$1" ] || return 0; done
	return 1
}

# pause SECONDS: sleep without a child process (a read that times out on a
# fifo nobody writes), so that no foreground command runs while stages may
# die: see reap_lost.
pause() {
	read -r -t "$1" -u "$tick"
}

# start_timer SECONDS: (re)arm the stop timer, a sleep that wait -n sees end.
start_timer() {
	stop_timer
	sleep "$1" &
	timer=$!
}

# stop_timer: kill the timer; disowned, its death goes unannounced.
stop_timer() {
	[ -n "$timer" ] || return 0
	kill "$timer" 2>/dev/null
	disown "$timer" 2>/dev/null
	timer=''
}

# hurry PID...: SIGTERM twice, a while apart: the second signal tells a tool
# to give up waiting for acknowledgements that cannot come any more.
hurry() {
	local p
	for p; do kill -TERM "$p" 2>/dev/null; done
	pause 0.2
	for p; do kill -TERM "$p" 2>/dev/null; done
}

# SIGTERM or SIGINT to the script: stop the upstream stage; the downstream
# reads to the end of its input, makes it durable and exits, and the upstream
# exits once it is acknowledged.  A second signal hurries both.
on_signal() {
	if [ ${#live[@]} -eq 0 ]; then
		pending=1	# before the stages run: run_pipe calls again
	elif [ "$stopping" -eq 0 ]; then
		stopping=1
		is_live "$up_pid" && kill -TERM "$up_pid" 2>/dev/null
		start_timer "$CDC_STOP_TIMEOUT"
	else
		hurry "${live[@]}"
	fi
}

# on_timer: a stage has not stopped in time: hurry the stages left, then,
# 5 seconds later, kill them.
on_timer() {
	local p
	timer=''
	for p in "${live[@]}"; do
		if [ "$escalated" -eq 0 ]; then
			warn "${stage_name[$p]} has not stopped after $CDC_STOP_TIMEOUT s; stopping it"
		else
			warn "${stage_name[$p]} has not stopped; killing it"
		fi
	done
	if [ "$escalated" -eq 0 ]; then
		escalated=1
		hurry "${live[@]}"
		start_timer 5
	else
		kill -KILL "${live[@]}" 2>/dev/null
	fi
}

# on_exit PID STATUS: a stage ended.  The first failure decides the exit
# status.  When the downstream ends, nothing more can be acknowledged: the
# upstream is hurried.  When the upstream ends, the downstream sees the end of
# its input and finishes by itself, within the stop timeout.
on_exit() {
	local p rest=()
	for p in "${live[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
	live=("${rest[@]}")
	# A stage killed by a signal we did not send is the cause; its partner
	# failing at the same moment (a broken pipe) is the consequence, even
	# when wait -n sees the partner first.
	if [ "$2" -gt 128 ] && { [ -z "$failure" ] || { [ "$failure_by_signal" = 0 ] && [ "$escalated" = 0 ]; }; }; then
		failure="${stage_name[$1]} was killed by signal $(($2 - 128))"
		failure_by_signal=1
	elif [ "$2" -ne 0 ] && [ -z "$failure" ]; then
		failure="${stage_name[$1]} exited with status $2"
		failure_by_signal=0
	fi
	[ -n "$timer" ] || [ ${#live[@]} -eq 0 ] || start_timer "$CDC_STOP_TIMEOUT"
	if [ "$1" = "$down_pid" ] && is_live "$up_pid"; then
		hurry "$up_pid"
	fi
}

# reap_lost: bash forgets a background job killed by a signal while a
# foreground command runs (it announces the death and drops the job), and
# wait -n no longer sees it; "wait PID" still has its status.
reap_lost() {
	local p st
	for p in "${live[@]}"; do
		kill -0 "$p" 2>/dev/null && continue
		st=0
		wait "$p" 2>/dev/null || st=$?
		on_exit "$p" "$st"
	done
	return 0
}

# with_us: the words that start a stage so that it dies with this script,
# even one killed by SIGKILL that can stop nothing: setpriv has the kernel send
# the stage SIGTERM when its parent dies (PR_SET_PDEATHSIG, kept across exec),
# and a stage whose parent is already some other process (the script died
# before that took effect) does not start.  Each stage then stops as on a
# signal: the downstream makes durable what it has, the upstream stores what
# was acknowledged.
with_us=(setpriv --pdeathsig TERM -- sh -c '[ "$PPID" = "$1" ] || exit 1; shift; exec "$@"' "$prog" "$$")

# run_pipe: run "${up[@]}" | "${down[@]}" and supervise them until both have
# exited.  The pipe is a fifo opened at once at both ends and unlinked, so
# that the shell knows the pid of either stage.
run_pipe() {
	local dir r w rw pid st
	dir=$(mktemp -d "${TMPDIR:-/tmp}/$prog.XXXXXX") || fail "cannot make a temporary directory"
	# shellcheck disable=SC2094 # the point: both ends of one fifo
	if ! mkfifo -m 600 "$dir/pipe" "$dir/tick" ||
		! exec {rw}<>"$dir/pipe" {r}<"$dir/pipe" {w}>"$dir/pipe" {tick}<>"$dir/tick"; then
		rm -rf "$dir"
		fail "cannot make a pipe in \"$dir\""
	fi
	exec {rw}>&-
	rm -rf "$dir"
	trap on_signal TERM INT
	"${with_us[@]}" "${up[@]}" >&"$w" {r}<&- {w}>&- {tick}<&- &
	up_pid=$!
	stage_name[$up_pid]=${up[0]}
	live=("$up_pid")
	"${with_us[@]}" "${down[@]}" <&"$r" {r}<&- {w}>&- {tick}<&- &
	down_pid=$!
	stage_name[$down_pid]=${down[0]}
	live+=("$down_pid")
	exec {r}<&- {w}>&-
	[ "$pending" -eq 0 ] || on_signal
	while reap_lost && [ ${#live[@]} -gt 0 ]; do
		pid=''
		# (bash's own "Killed" notices would only repeat on_exit's message)
		wait -n -p pid "${live[@]}" ${timer:+"$timer"} 2>/dev/null
		st=$?
		if [ -z "${pid:-}" ]; then
			# a signal, handled by its trap, or no child left that
			# wait -n knows of: reap_lost finds the stage
			[ "$st" -gt 128 ] || pause 0.1
		elif [ "$pid" = "$timer" ]; then
			on_timer
		else
			on_exit "$pid" "$st"
		fi
	done
	stop_timer
	exec {tick}<&-
	if [ -n "$failure" ]; then
		echo "$prog: $failure" >&2
		return 1
	fi
	return 0
}

# parse_args ARGS...: options into env_files and dry_run; help and version.
env_files=() dry_run=0
parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		-e | --env-file)
			[ $# -ge 2 ] || usage_error "option \"$1\" requires a file"
			env_files+=("$2")
			shift ;;
		--env-file=*) env_files+=("${1#*=}") ;;
		-e?*) env_files+=("${1#-e}") ;;
		-n | --dry-run) dry_run=1 ;;
		-h | --help) printf '%s' "$usage_text"; exit 0 ;;
		-V | --version)
			echo "$prog $(pg-cdc-tail --version 2>/dev/null | sed -n '1s/.* //p')"
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

# show_pipe: print the pipeline as a shell script that would run it.
show_pipe() {
	[ -z "${KAFKA_BROKERS:-}" ] || echo "export KAFKA_BROKERS=$(quote "$KAFKA_BROKERS")"
	echo "$(quote "${up[@]}") |"
	quote "${down[@]}"
	echo
}

# The tools installed beside this script come first.
PATH=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd):$PATH
