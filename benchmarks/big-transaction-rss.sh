#!/usr/bin/env bash
# Needs: a MariaDB with binlog ROW/FULL on 127.0.0.1:$PORT (root through $SOCKET, user $USER_PW with all privileges)
# and a Release build of the Cli.
# Peak resident memory of `osc alter --execute` while one application transaction changes most of the table: the
# replay has to stream that transaction's row images (MODE=update: before and after images; MODE=delete: before
# images; MODE=none: no big transaction, the baseline). The cut-over is postponed (flag file) until the big transaction has committed, so the replay of it always
# happens while osc runs.
set -eu
OSC=${OSC:-src/OnlineSchemaChange.Cli/bin/Release/net10.0/osc.dll}
PORT=${PORT:-3417}; SOCKET=${SOCKET:?path of the server socket, for root}; USER_PW=${USER_PW:-osc:secret}
ROWS=${ROWS:-600000}; CHANGED=${CHANGED:-500000}; MODE=${MODE:-update}; OUT=${OUT:-$(mktemp -d)}
M="mariadb --no-defaults -S $SOCKET -uroot -N -e"

$M "DROP DATABASE IF EXISTS bigtx; CREATE DATABASE bigtx;
    CREATE TABLE bigtx.sbtest1 (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0,
      c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k));
    USE bigtx;
    INSERT INTO bigtx.sbtest1 (id, k, c, pad) SELECT seq, seq % 100000, LPAD(seq, 120, '0123456789-'), LPAD(seq, 60, 'abcdef-') FROM seq_1_to_$ROWS;"

mkdir -p $OUT
FLAG=$OUT/postpone
touch $FLAG
start=$(date +%s.%N)
dotnet $OSC alter mysql://$USER_PW@127.0.0.1:$PORT/bigtx --table sbtest1 --alter "MODIFY k BIGINT NOT NULL DEFAULT 0" \
  --execute --json --no-replica-discovery --postpone-cut-over-flag-file $FLAG > $OUT/osc.jsonl 2> $OUT/osc.err &
OSC_PID=$!
peak=0
( while kill -0 $OSC_PID 2>/dev/null; do
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$OSC_PID/status 2>/dev/null || true)
    [[ -n $hwm ]] && echo $hwm > $OUT/hwm
    sleep 0.05
  done ) &
POLL_PID=$!

sleep 2 # the copy is under way
tx0=$(date +%s.%N)
if [[ $MODE == none ]]; then
  : # the baseline: the same run without the big transaction
elif [[ $MODE == delete ]]; then
  $M "DELETE FROM bigtx.sbtest1 WHERE id <= $CHANGED"
else
  $M "UPDATE bigtx.sbtest1 SET c = CONCAT('changed in one transaction ', id), pad = REVERSE(pad) WHERE id <= $CHANGED"
fi
tx1=$(date +%s.%N)
binlog_bytes=$($M "SHOW BINARY LOGS" | awk '{s+=$2} END {print s}')
rm -f $FLAG
status=0
wait $OSC_PID || status=$?
end=$(date +%s.%N)
wait $POLL_PID || true
peak=$(cat $OUT/hwm)
echo "mode=$MODE rows=$ROWS changed_in_one_transaction=$CHANGED osc_exit=$status"
echo "big_transaction_s=$(echo "$tx1 - $tx0" | bc) osc_total_s=$(echo "$end - $start" | bc) binlog_bytes_total=$binlog_bytes"
echo "osc_peak_rss_mb=$(( peak / 1024 ))"
echo "k_type=$($M "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='bigtx' AND TABLE_NAME='sbtest1' AND COLUMN_NAME='k'") rows_after=$($M "SELECT COUNT(*) FROM bigtx.sbtest1")"
tail -n 1 $OUT/osc.jsonl
[[ -s $OUT/osc.err ]] && cat $OUT/osc.err
exit $status
