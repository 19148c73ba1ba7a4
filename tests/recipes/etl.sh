#!/bin/sh
# The nightly ETL as three steps, each reported to its own Heartfly check. cron chains them, so a
# step runs only once the step before it has succeeded:
#
#   30 1 * * *  cd /srv/etl && ./etl.sh extract && ./etl.sh transform && ./etl.sh load
#
# From the environment: HB (Heartfly's base URL), EXTRACT_KEY and EXTRACT_FAIL_KEY (the extract
# check's key and fail_key), TRANSFORM_KEY, LOAD_KEY, ETL_SOURCE (the day's order export: CSV with
# the header order_id,customer,amount), ETL_WORK (a scratch folder) and ETL_TARGET (the report's folder).
set -u

ping() {  # ping PATH WHAT: a ping that cannot be recorded is a warning, never the step's failure
    curl -fsS -m 10 --retry 3 -o /dev/null "$HB/ping/$1" || echo "warning: $2 ping not recorded" >&2
}

extract() {
    if [ "$(head -n 1 "$ETL_SOURCE")" != "order_id,customer,amount" ]; then
        echo "extract: $ETL_SOURCE is not an order export" >&2
        return 1
    fi
    tail -n +2 "$ETL_SOURCE" > "$ETL_WORK/orders.csv"
}

transform() {
    awk -F, '{ total[$2] += $3 } END { for (c in total) printf "%s,%.2f\n", c, total[c] }' \
        "$ETL_WORK/orders.csv" | sort > "$ETL_WORK/totals.csv"
}

load() {
    cp "$ETL_WORK/totals.csv" "$ETL_TARGET/totals.csv.tmp" && mv "$ETL_TARGET/totals.csv.tmp" "$ETL_TARGET/totals.csv"
}

case "${1:-}" in
    extract) key=$EXTRACT_KEY ;;
    transform) key=$TRANSFORM_KEY ;;
    load) key=$LOAD_KEY ;;
    *) echo "usage: etl.sh extract|transform|load" >&2; exit 2 ;;
esac

ping "$key/start" start
"$1"
status=$?
if [ "$status" -eq 0 ]; then
    ping "$key" success
elif [ "$1" = extract ]; then
    ping "$EXTRACT_FAIL_KEY" failure  # extract has a failure URL of its own
else
    ping "$key/$status" failure  # the other steps report their exit status
fi
exit "$status"
