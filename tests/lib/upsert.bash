# Events of the orders table and views of the warehouse, for the suites that
# feed pg-upsert by hand (pg-upsert.bats, upsert-edge.bats).  $WH is the
# test's warehouse database (new_warehouse_db).
#
#   upsert [OPTION]...                    pg-upsert into $WH's analytics.fct_orders
#   uuid N                                the id of order N
#   order OP N POS STATUS [AMOUNT]        an event of order N as trigger capture writes it
#   state N                               status|amount_cents|cdc_pos|is_deleted of order N
#   dead_letter ERROR N LINE              the dead-letter record of input line N (table, key
#                                         and pos as jq writes them: compact lines only)

upsert() {
	pg-upsert -d "$WH" -t analytics.fct_orders "$@"
}

uuid() {
	printf '00000000-0000-0000-0000-%012d' "$1"
}

order() {
	local id row before=null after=null
	id=$(uuid "$2")
	row="{\"id\":\"$id\",\"status\":\"$4\",\"amount_cents\":${5:-100}}"
	if [ "$1" = d ]; then before=$row; else after=$row; fi
	printf '{"op":"%s","table":"public.orders","key":{"id":"%s"},"before":%s,"after":%s,"pos":%s,"txid":7,"ts_ms":1764150000123}\n' \
		"$1" "$id" "$before" "$after" "$3"
}

state() {
	sql -d "$WH" -c "SELECT status, amount_cents, cdc_pos, is_deleted
		FROM analytics.fct_orders WHERE id = '$(uuid "$1")'"
}

dead_letter() {
	local err line origin
	err=$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')
	line=$(printf '%s' "$3" | sed 's/[\\"]/\\&/g')
	# the line's table, key and pos when it is an object holding them (pgcdc-event(5))
	origin=$(jq -rj 'if type == "object" then
		(if (.table | type) == "string" then ",\"table\":\(.table | tojson)" else "" end) +
		(if (.key | type) == "object" and (.key | tojson | length) <= 1024 then ",\"key\":\(.key | tojson)" else "" end) +
		(if (.pos | type) == "number" then ",\"pos\":" else "" end)
		else "" end' <<<"$3" 2>/dev/null)
	# the pos as the line writes it (jq would round a number past 2^53)
	[[ $origin != *'"pos":' ]] || origin+=$(grep -o '"pos":-\?[0-9][-+0-9.eE]*' <<<"$3" | tail -n 1 | cut -d: -f2)
	printf '{"error":"%s","input_line":%s%s,"line":"%s"}' "$err" "$2" "$origin" "$line"
}
