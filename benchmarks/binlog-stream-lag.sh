#!/usr/bin/env bash
# Needs: a MariaDB with binlog ROW/FULL on 127.0.0.1:$PORT, sysbench prepared in database sbtest (1 table), a Release build of the Cli with BinlogCommand wired into Program.cs.
# Unthrottled sysbench oltp_write_only for 20 s while osc binlog streams sbtest.sbtest1; samples how far behind
# (bytes of binlog) the client is every second, and how long it needs to catch up after the load stops.
set -u
OSC=${OSC:-src/OnlineSchemaChange.Cli/bin/Release/net10.0/osc.dll}
PORT=${PORT:-3399}; SOCKET=${SOCKET:?path of the server socket, for root}; USER_PW=${USER_PW:-osc:secret}; OUT=${OUT:-$(mktemp -d)}
M="mariadb -S $SOCKET -uroot -N -e"
dotnet $OSC binlog mysql://$USER_PW@127.0.0.1:$PORT/ --tables sbtest.sbtest1 > $OUT/stream.txt 2>$OUT/stream.err &
OSC_PID=$!
sleep 2
sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port=$PORT --mysql-user=${USER_PW%%:*} --mysql-password=${USER_PW#*:} --mysql-db=sbtest --tables=1 --table-size=100000 --threads=4 --time=20 --report-interval=5 run > $OUT/sysbench.txt 2>&1 &
SB_PID=$!
max_behind=0
while kill -0 $SB_PID 2>/dev/null; do
  master=$($M "SHOW MASTER STATUS" | awk '{print $2}')
  ours=$(tail -n 1 $OUT/stream.txt | sed -E 's/^[^:]*:([0-9]+).*/\1/')
  if [[ -z $ours ]]; then sleep 1; continue; fi  # nothing streamed yet
  behind=$(( master - ours ))
  (( behind > max_behind )) && max_behind=$behind
  echo "master=$master client=$ours behind_bytes=$behind"
  sleep 1
done
final=$($M "SHOW MASTER STATUS" | awk '{print $2}')
t0=$(date +%s.%N)
while true; do
  ours=$(tail -n 1 $OUT/stream.txt | sed -E 's/^[^:]*:([0-9]+).*/\1/')
  [[ -n $ours && $ours -ge $final ]] && break
  sleep 0.05
done
t1=$(date +%s.%N)
echo "max_behind_bytes=$max_behind catch_up_after_load_s=$(echo "$t1 - $t0" | bc)"
kill $OSC_PID
grep -E "transactions:|queries:" $OUT/sysbench.txt
wc -l < $OUT/stream.txt
