# Events of the orders table and views of the warehouse, for the suites that
# feed pg-upsert by hand (pg-upsert.bats, upsert-edge.bats).  $WH is the
# test's warehouse database (new_warehouse_db).
#
#   upsert [OPTION]...                    pg-upsert into $WH's analytics.fct_orders
#   uuid N                                the id of order N
#   order OP N POS STATUS [AMOUNT]        an event of order N as trigger capture writes it
#   state N                               status|amount_cents|cdc_pos|is_deleted of order N
#   dead_letter ERROR N LINE              the dead-letter record of input line N

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
	local err line
	err=$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')
	line=$(printf '%s' "$3" | sed 's/[\\"]/\\&/g')
	printf '{"error":"%s","input_line":%s,"line":"%s"}' "$err" "$2" "$line"
}
