# Throwaway Apache Kafka clusters (KRaft, no ZooKeeper) for tests and demos.
#
#   kafka_fetch                     download the broker jars once (mvn, cached)
#   kafka_start [N]                 start N brokers; exports KAFKA_BROKERS/KAFKA_DIR
#   kafka_stop_broker I             stop broker I gracefully (SIGTERM), keep its data
#   kafka_start_broker I            start broker I again and wait until it serves
#   kafka_kill_broker I             crash broker I (SIGKILL)
#   kafka_restart                   stop every broker, start them again
#   kafka_destroy                   kill every broker and remove the cluster
#   kafka_topic NAME PARTS [RF]     create a topic and wait for its leaders
#   KAFKA_SECURE=1 kafka_start      also a SASL_SSL listener on each node (see
#                                   kafka_secure): TLS from a throwaway CA, a
#                                   user for SCRAM-SHA-256 and PLAIN; exports
#                                   KAFKA_SECURE_BROKERS, KAFKA_CA, KAFKA_USER,
#                                   KAFKA_PASSWORD_FILE
#
# The jars come from Maven Central through tests/kafka/pom.xml and are kept in
# ${PGCDC_CACHE:-$HOME/.cache/pgcdc}/kafka-VERSION/libs.  Every node is a
# combined broker and controller listening on 127.0.0.1 only, on ports that
# nothing else uses; brokers are numbered 1..N, which is also their node.id.
# The cluster's state lives in $KAFKA_DIR: size, brokers, and per node
# nodeI/{server.properties,pid,data,server.log,stdout.log}.

KAFKA_POM=${KAFKA_POM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../kafka" && pwd)/pom.xml}
KAFKA_VERSION=${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")}
KAFKA_LIBS=${KAFKA_LIBS:-${PGCDC_CACHE:-$HOME/.cache/pgcdc}/kafka-$KAFKA_VERSION/libs}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
# short-lived JVMs: start fast rather than run fast (the serial collector and
# the C1 compiler alone: 2.8 s -> 1.9 s for one broker, 8.2 s -> 5.0 s for three)
KAFKA_JAVA_OPTS=${KAFKA_JAVA_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms64m -Xmx384m}

# The cache is complete when its stamp holds the checksum of the pom that
# filled it; a changed pom or an interrupted download fetches again.  Unless
# KAFKA_CDS=0 it then also holds a class-data archive for the machine's java.
kafka_fetch() {
	local sum
	sum=$(sha256sum <"$KAFKA_POM") || return 1
	if [ "$(cat "$KAFKA_LIBS/.complete" 2>/dev/null)" != "$sum" ]; then
		_kafka_download "$sum" || return 1
	fi
	[ "${KAFKA_CDS:-1}" = 0 ] || [ -e "$(_kafka_cds_file)" ] || _kafka_make_cds
	return 0
}

# _kafka_download SUM: fill the jar cache; SUM goes into its stamp
_kafka_download() {
	echo "kafka.bash: fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS" >&2
	mkdir -p "$(dirname "$KAFKA_LIBS")" || return 1
	local tmp
	tmp=$(mktemp -d "$KAFKA_LIBS.XXXXXX") || return 1
	if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
		-DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
		# without the colour codes Debian's mvn writes even with -B
		sed 's/\x1b\[[0-9;]*m//g' "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		rmdir "$(dirname "$KAFKA_LIBS")" 2>/dev/null
		return 1
	fi
	rm -f "$tmp.log"
	echo "$1" >"$tmp/.complete"
	chmod 755 "$tmp"
	rm -rf "$KAFKA_LIBS"
	mv "$tmp" "$KAFKA_LIBS"
	echo "kafka.bash: fetched $(ls "$KAFKA_LIBS" | wc -l) jars" >&2
}

# Class-data sharing: a dynamic CDS archive of the classes a broker loads
# takes a third off every JVM start (kafka_start: 1.9 s -> 1.3 s for one
# broker, 5.0 s -> 3.2 s for three, on 2 cores).  The archive
# only fits the java and the jars that wrote it, hence the java's identity in
# its name and its place among the jars (a new download drops it); a JVM that
# cannot use it starts without it, silently.
_kafka_cds_file() {
	local j
	j=$(readlink -f "$(command -v java)")
	echo "$KAFKA_LIBS/classes-$(stat -c %Y-%s "$j").jsa"
}

_kafka_cds_opts() {
	local f
	[ "${KAFKA_CDS:-1}" = 0 ] && return 0
	f=$(_kafka_cds_file)
	[ -e "$f" ] && echo "-XX:SharedArchiveFile=$f -Xlog:cds=off,cds+dynamic=off"
}

# _kafka_make_cds: write the archive from a short run of a broker that
# creates a topic and serves a producer, a consumer and a consumer group; the
# JVM writes the archive when the broker stops gracefully.
_kafka_make_cds() {
	local f tmp
	f=$(_kafka_cds_file)
	tmp=$f.$$
	echo "kafka.bash: recording the classes a broker loads into $f" >&2
	(
		KAFKA_CDS=0 _KAFKA_DUMP=$tmp
		kafka_start 1 &&
			kafka_topic cds 1 &&
			echo x | kcat -b "$KAFKA_BROKERS" -P -t cds &&
			kcat -b "$KAFKA_BROKERS" -C -t cds -e -q >/dev/null &&
			kcat -b "$KAFKA_BROKERS" -G cds -e -q cds >/dev/null 2>&1 &&
			kafka_stop_broker 1
		kafka_destroy
	) 3>&-
	if [ -s "$tmp" ]; then
		mv "$tmp" "$f"
	else
		rm -f "$tmp"
		echo "kafka.bash: no class-data archive; brokers start without it" >&2
	fi
}

# _kafka_java [JVM OPTIONS] CLASS ARGS...: run a Kafka tool from the cached
# jars, logging only errors to stderr.
_kafka_java() {
	# shellcheck disable=SC2086
	java $KAFKA_JAVA_OPTS $(_kafka_cds_opts) -Xmx256m -cp "$KAFKA_LIBS/*" \
		-Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" "$@"
}

# _kafka_free_port: a port in 20000..32767 (below the kernel's ephemeral
# range, above the usual services) on which no socket is bound, and not
# handed out earlier to this cluster.
_kafka_free_port() {
	local p used
	used=$(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }')
	while :; do
		p=$((20000 + RANDOM % 12768))
		grep -qx "$p" <<<"$used" && continue
		grep -qw "$p" "$KAFKA_DIR/ports" 2>/dev/null && continue
		echo "$p" >>"$KAFKA_DIR/ports"
		echo "$p"
		return 0
	done
}

# _kafka_cluster_id: a random Kafka UUID (16 bytes, URL-safe base64 without
# padding), what kafka-storage random-uuid prints, without starting a JVM.
# Like Kafka's own, it never starts with "-", which would read as an option.
_kafka_cluster_id() {
	local id=-
	while [ "${id#-}" != "$id" ]; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	done
	echo "$id"
}

# kafka_start [N]: format and start N nodes (default 1) in a new $KAFKA_DIR,
# wait until all serve.  Replication factors are min(N, 3), min.insync.replicas
# one less (at least 1): a cluster of 3 takes acks=all writes with a broker down.
kafka_start() {
	local n=${1:-1} i rf isr voters= brokers= bp cp
	kafka_fetch || return 1
	KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pgcdc-kafka.XXXXXX") || return 1
	export KAFKA_DIR
	echo "$n" >"$KAFKA_DIR/size"
	rf=$((n < 3 ? n : 3))
	isr=$((rf > 1 ? rf - 1 : 1))
	for i in $(seq "$n"); do
		bp=$(_kafka_free_port)
		cp=$(_kafka_free_port)
		voters="$voters${voters:+,}$i@127.0.0.1:$cp"
		brokers="$brokers${brokers:+,}127.0.0.1:$bp"
		mkdir "$KAFKA_DIR/node$i"
		echo "$bp $cp" >"$KAFKA_DIR/node$i/ports"
		[ "${KAFKA_SECURE:-0}" = 0 ] || _kafka_free_port >"$KAFKA_DIR/node$i/secure_port"
	done
	if [ "${KAFKA_SECURE:-0}" != 0 ]; then
		kafka_secure || return 1
	fi
	KAFKA_BROKERS=$brokers
	export KAFKA_BROKERS
	echo "$brokers" >"$KAFKA_DIR/brokers"
	cat >"$KAFKA_DIR/tools-log4j2.properties" <<-EOF
		status = error
		appender.err.type = Console
		appender.err.name = err
		appender.err.target = SYSTEM_ERR
		appender.err.layout.type = PatternLayout
		appender.err.layout.pattern = %p %m (%c)%n
		rootLogger.level = error
		rootLogger.appenderRef.err.ref = err
	EOF
	for i in $(seq "$n"); do
		read -r bp cp <"$KAFKA_DIR/node$i/ports"
		cat >"$KAFKA_DIR/node$i/log4j2.properties" <<-EOF
			status = error
			appender.file.type = File
			appender.file.name = file
			appender.file.fileName = $KAFKA_DIR/node$i/server.log
			appender.file.layout.type = PatternLayout
			appender.file.layout.pattern = [%d] %p %m (%c)%n
			rootLogger.level = warn
			rootLogger.appenderRef.file.ref = file
		EOF
		cat >"$KAFKA_DIR/node$i/server.properties" <<-EOF
			process.roles=broker,controller
			node.id=$i
			listeners=PLAINTEXT://127.0.0.1:$bp,CONTROLLER://127.0.0.1:$cp
			advertised.listeners=PLAINTEXT://127.0.0.1:$bp
			listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
			inter.broker.listener.name=PLAINTEXT
			controller.listener.names=CONTROLLER
			controller.quorum.voters=$voters
			controller.quorum.election.timeout.ms=500
			log.dirs=$KAFKA_DIR/node$i/data
			num.partitions=1
			auto.create.topics.enable=true
			default.replication.factor=$rf
			min.insync.replicas=$isr
			offsets.topic.replication.factor=$rf
			offsets.topic.num.partitions=1
			transaction.state.log.replication.factor=$rf
			transaction.state.log.min.isr=$isr
			transaction.state.log.num.partitions=1
			share.coordinator.state.topic.replication.factor=$rf
			share.coordinator.state.topic.min.isr=$isr
			group.initial.rebalance.delay.ms=0
			log.retention.check.interval.ms=5000
			log.flush.offset.checkpoint.interval.ms=5000
			broker.heartbeat.interval.ms=500
			broker.session.timeout.ms=3000
			replica.lag.time.max.ms=5000
			num.network.threads=2
			num.io.threads=2
			num.recovery.threads.per.data.dir=1
			background.threads=2
		EOF
		[ "${KAFKA_SECURE:-0}" = 0 ] || _kafka_secure_listener "$i"
	done
	local cid
	cid=$(_kafka_cluster_id)
	# format the nodes in parallel: each is a JVM start; the SCRAM user is
	# made with them (KRaft keeps credentials in its metadata log)
	local pids= pid failed=0 scram=()
	[ "${KAFKA_SECURE:-0}" = 0 ] ||
		scram=(--add-scram "SCRAM-SHA-256=[name=$KAFKA_USER,password=$(cat "$KAFKA_PASSWORD_FILE")]")
	for i in $(seq "$n"); do
		_kafka_java kafka.tools.StorageTool format --cluster-id "$cid" \
			--config "$KAFKA_DIR/node$i/server.properties" "${scram[@]}" \
			>"$KAFKA_DIR/node$i/format.log" 2>&1 </dev/null 3>&- &
		pids="$pids $!"
	done
	for pid in $pids; do
		wait "$pid" || failed=1
	done
	if [ "$failed" -ne 0 ]; then
		cat "$KAFKA_DIR"/node*/format.log >&2
		return 1
	fi
	for i in $(seq "$n"); do
		_kafka_launch "$i" || return 1
	done
	_kafka_wait_ready
}

# kafka_secure: a throwaway CA and a certificate for 127.0.0.1 signed by it,
# in $KAFKA_DIR/tls; a user whose password is in a file (as the tools'
# examples keep secrets), for SCRAM-SHA-256 and PLAIN, and a second CA that
# signed nothing, for the failures.  (librdkafka before 2.6.1, Debian 12's
# 2.0.2 among them, cannot log in to Kafka 4 with SCRAM: librdkafka 4895;
# tests/kafka/pom-3.xml is a Kafka 3.9 that it can.)
# Called by kafka_start with KAFKA_SECURE=1.
kafka_secure() {
	local d=$KAFKA_DIR/tls
	mkdir -p "$d" && chmod 700 "$d" || return 1
	{
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgcdc test CA" \
			-keyout "$d/ca.key" -out "$d/ca.pem" &&
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgcdc other CA" \
			-keyout "$d/other-ca.key" -out "$d/other-ca.pem" &&
		openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
			-keyout "$d/broker.key" -out "$d/broker.csr" &&
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/san.ext" &&
		openssl x509 -req -in "$d/broker.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
			-CAcreateserial -days 2 -extfile "$d/san.ext" -out "$d/broker.pem" &&
		head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$d/keystore.password" &&
		openssl pkcs12 -export -in "$d/broker.pem" -inkey "$d/broker.key" \
			-passout "file:$d/keystore.password" -out "$d/broker.p12"
	} >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
	head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$d/pgcdc.password"
	local i sp brokers=
	for i in $(seq "$(cat "$KAFKA_DIR/size")"); do
		sp=$(cat "$KAFKA_DIR/node$i/secure_port")
		brokers="$brokers${brokers:+,}127.0.0.1:$sp"
	done
	KAFKA_SECURE_BROKERS=$brokers KAFKA_CA=$d/ca.pem KAFKA_USER=pgcdc
	KAFKA_PASSWORD_FILE=$d/pgcdc.password
	export KAFKA_SECURE_BROKERS KAFKA_CA KAFKA_USER KAFKA_PASSWORD_FILE
}

# _kafka_secure_listener I: node I's SASL_SSL listener, added to its
# server.properties (the PLAINTEXT one stays for the brokers and the tools)
_kafka_secure_listener() {
	local f=$KAFKA_DIR/node$1/server.properties sp bp cp
	sp=$(cat "$KAFKA_DIR/node$1/secure_port")
	read -r bp cp <"$KAFKA_DIR/node$1/ports"
	sed -i -e "s|^listeners=.*|listeners=PLAINTEXT://127.0.0.1:$bp,CONTROLLER://127.0.0.1:$cp,SASL_SSL://127.0.0.1:$sp|" \
		-e "s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://127.0.0.1:$bp,SASL_SSL://127.0.0.1:$sp|" \
		-e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL|" "$f"
	cat >>"$f" <<-EOF
		sasl.enabled.mechanisms=SCRAM-SHA-256,PLAIN
		listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
		listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_USER="$(cat "$KAFKA_PASSWORD_FILE")";
		ssl.keystore.type=PKCS12
		ssl.keystore.location=$KAFKA_DIR/tls/broker.p12
		ssl.keystore.password=$(cat "$KAFKA_DIR/tls/keystore.password")
		ssl.key.password=$(cat "$KAFKA_DIR/tls/keystore.password")
	EOF
}

# _kafka_launch I: start node I in the background, detached from the caller
# (the double fork makes init its parent, so a killed broker does not linger
# as a zombie of a long-lived bats process), and record its pid.
_kafka_launch() {
	local d="$KAFKA_DIR/node$1"
	(
		# shellcheck disable=SC2086
		java $KAFKA_JAVA_OPTS $KAFKA_HEAP_OPTS -XX:+ExitOnOutOfMemoryError \
			$(_kafka_cds_opts) ${_KAFKA_DUMP:+-XX:ArchiveClassesAtExit=$_KAFKA_DUMP} \
			-Djava.awt.headless=true \
			-Dlog4j2.configurationFile="$d/log4j2.properties" \
			-Dkafka.logs.dir="$d" \
			-cp "$KAFKA_LIBS/*" kafka.Kafka "$d/server.properties" \
			</dev/null >>"$d/stdout.log" 2>&1 3>&- &
		echo $! >"$d/pid"
	)
}

# _kafka_alive PID: the process exists and is not a zombie
_kafka_alive() {
	local s
	s=$(cut -d ' ' -f 3 "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$s" ] && [ "$s" != Z ]
}

# _kafka_pid I: the pid of node I if it is running
_kafka_pid() {
	local pid
	pid=$(cat "$KAFKA_DIR/node$1/pid" 2>/dev/null) || return 1
	_kafka_alive "$pid" && echo "$pid"
}

# _kafka_log_tail: the end of every running or failed node's logs, to stderr
_kafka_log_tail() {
	local d
	for d in "$KAFKA_DIR"/node*; do
		echo "--- $d/server.log" >&2
		tail -n 30 "$d/server.log" >&2 2>/dev/null
		echo "--- $d/stdout.log" >&2
		tail -n 15 "$d/stdout.log" >&2 2>/dev/null
	done
}

# _kafka_wait_ready: wait until every running broker answers a metadata
# request listing all the running brokers; fail (with the logs' tails) after
# KAFKA_START_TIMEOUT seconds or when a started broker dies.
_kafka_wait_ready() {
	local n i up bp cp deadline=$((SECONDS + KAFKA_START_TIMEOUT)) ok
	n=$(cat "$KAFKA_DIR/size")
	while :; do
		ok=1 up=0
		for i in $(seq "$n"); do
			_kafka_pid "$i" >/dev/null && up=$((up + 1))
		done
		for i in $(seq "$n"); do
			if ! _kafka_pid "$i" >/dev/null; then
				[ -e "$KAFKA_DIR/node$i/stopped" ] && continue
				echo "kafka.bash: broker $i exited" >&2
				_kafka_log_tail
				return 1
			fi
			read -r bp cp <"$KAFKA_DIR/node$i/ports"
			# kcat would retry a refused connection for its whole timeout
			{ : >"/dev/tcp/127.0.0.1/$bp"; } 2>/dev/null &&
				kcat -b "127.0.0.1:$bp" -L -m 2 2>/dev/null |
				grep -q "^ $up brokers:" || { ok=0; break; }
		done
		[ "$ok" -eq 1 ] && return 0
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "kafka.bash: brokers not ready after ${KAFKA_START_TIMEOUT}s" >&2
			_kafka_log_tail
			return 1
		fi
		sleep 0.2
	done
}

# _kafka_wait_exit PID SECONDS: wait for the process to end
_kafka_wait_exit() {
	local i=0
	while _kafka_alive "$1"; do
		i=$((i + 1))
		[ "$i" -ge $(($2 * 20)) ] && return 1
		sleep 0.05
	done
}

# kafka_stop_broker I: SIGTERM, a controlled shutdown; SIGKILL after 30 s
kafka_stop_broker() {
	local pid
	touch "$KAFKA_DIR/node$1/stopped"
	pid=$(_kafka_pid "$1") || return 0
	kill -TERM "$pid"
	_kafka_wait_exit "$pid" 30 && return 0
	echo "kafka.bash: broker $1 did not stop in 30 s; killing it" >&2
	kafka_kill_broker "$1"
}

# kafka_kill_broker I: a crash; the broker recovers its logs when started again
kafka_kill_broker() {
	local pid
	touch "$KAFKA_DIR/node$1/stopped"
	pid=$(_kafka_pid "$1") || return 0
	kill -KILL "$pid"
	_kafka_wait_exit "$pid" 10
}

# kafka_start_broker I: start a stopped or killed broker (nothing if it runs)
# and wait until every running broker sees it
kafka_start_broker() {
	_kafka_pid "$1" >/dev/null && return 0
	rm -f "$KAFKA_DIR/node$1/stopped"
	_kafka_launch "$1" && _kafka_wait_ready
}

# kafka_restart: every node is stopped at once (one after the other, the
# last ones would wait for a controller quorum that has gone; even so the last
# node of 3 takes 5 s to give up its quorum), then all start again.
kafka_restart() {
	local n i pid pids=
	n=$(cat "$KAFKA_DIR/size")
	for i in $(seq "$n"); do
		touch "$KAFKA_DIR/node$i/stopped"
		pid=$(_kafka_pid "$i") || continue
		kill -TERM "$pid"
		pids="$pids $pid"
	done
	for pid in $pids; do
		_kafka_wait_exit "$pid" 30 || kill -KILL "$pid"
	done
	for pid in $pids; do
		_kafka_wait_exit "$pid" 10
	done
	for i in $(seq "$n"); do
		rm -f "$KAFKA_DIR/node$i/stopped"
		_kafka_launch "$i" || return 1
	done
	_kafka_wait_ready
}

# kafka_destroy: SIGKILL every node, remove $KAFKA_DIR; nothing if there is none
kafka_destroy() {
	[ -n "${KAFKA_DIR:-}" ] && [ -d "$KAFKA_DIR" ] || return 0
	local d pid
	for d in "$KAFKA_DIR"/node*; do
		pid=$(cat "$d/pid" 2>/dev/null) || continue
		_kafka_alive "$pid" && kill -KILL "$pid"
		_kafka_wait_exit "$pid" 10
	done
	rm -rf "$KAFKA_DIR"
}

# kafka_topic NAME PARTITIONS [RF]: create the topic (RF defaults to the
# cluster's default.replication.factor) and wait until every broker knows
# every partition's leader.
kafka_topic() {
	local name=$1 parts=$2 rf=${3:-} n i bp cp deadline
	n=$(cat "$KAFKA_DIR/size")
	[ -n "$rf" ] || rf=$((n < 3 ? n : 3))
	_kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
		--create --topic "$name" --partitions "$parts" --replication-factor "$rf" \
		>/dev/null </dev/null 3>&- || return 1
	deadline=$((SECONDS + 30))
	for i in $(seq "$n"); do
		_kafka_pid "$i" >/dev/null || continue
		read -r bp cp <"$KAFKA_DIR/node$i/ports"
		until [ "$(kcat -b "127.0.0.1:$bp" -L -m 2 -t "$name" 2>/dev/null |
			grep -c '^ *partition [0-9]*, leader [0-9]')" -eq "$parts" ]; do
			if [ "$SECONDS" -ge "$deadline" ]; then
				echo "kafka.bash: topic $name has no leaders after 30 s" >&2
				return 1
			fi
			sleep 0.1
		done
	done
}
